"""Alerts (health_check_alerts): one firing alert per problem, repeats update it.

The worker (service role) opens, repeats and resolves alerts; API callers
(ihm_api) read them and may only acknowledge or dismiss, which is all the
columns their grant lets them write. Resolving and acting are both
compare-and-set on `state = 'FIRING'`, so a worker and a coordinator racing
each other never undo one another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from db.pagination import Page, keyset, page_of


@dataclass(frozen=True)
class Alert:
    id: UUID
    org_id: UUID
    integration_type: str
    kind: str  # AUTH_FAILURE | UNREACHABLE | DEGRADED | EXPORT_FAILED | SCHEDULER_DRIFT
    severity: str  # INFO | WARNING | CRITICAL
    state: str  # FIRING | RESOLVED
    category: str | None
    title: str
    message: str
    guidance: str
    fingerprint: str
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    last_notified_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    dismissed_at: datetime | None
    dismissed_by: str | None
    resolved_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Alert:
        return cls(**{name: row[name] for name in _FIELDS})


class AlertResolved(Exception):
    """Acknowledging or dismissing an alert that is already resolved (the API: CONFLICT)."""

    def __init__(self, alert: Alert) -> None:
        self.alert = alert
        super().__init__(f"alert {alert.id} is already resolved")


_FIELDS = (
    "id",
    "org_id",
    "integration_type",
    "kind",
    "severity",
    "state",
    "category",
    "title",
    "message",
    "guidance",
    "fingerprint",
    "opened_at",
    "last_seen_at",
    "occurrences",
    "last_notified_at",
    "acknowledged_at",
    "acknowledged_by",
    "dismissed_at",
    "dismissed_by",
    "resolved_at",
)
_COLUMNS = ", ".join(_FIELDS)

_LIST_FOR_ORG = f"""
SELECT {_COLUMNS}
  FROM health_check_alerts
 WHERE org_id = $1
   AND ($2::text IS NULL OR state = $2)
   AND ($3::boolean OR dismissed_at IS NULL)
   AND ($4::timestamptz IS NULL OR (opened_at, id) < ($4, $5::uuid))
 ORDER BY opened_at DESC, id DESC
 LIMIT $6
"""
_ACTIVE_FOR = f"""
SELECT {_COLUMNS}
  FROM health_check_alerts
 WHERE org_id = $1 AND integration_type = ANY($2::text[]) AND state = 'FIRING'
 ORDER BY opened_at DESC, id DESC
"""
_GET = f"SELECT {_COLUMNS} FROM health_check_alerts WHERE id = $1"
_ORG_OF = "SELECT ihm_global_alert_org($1)"

# Only the first acknowledgement (dismissal) counts; later ones change nothing.
_ACKNOWLEDGE = f"""
UPDATE health_check_alerts
   SET acknowledged_at = now(), acknowledged_by = $2
 WHERE id = $1 AND state = 'FIRING' AND acknowledged_at IS NULL
RETURNING {_COLUMNS}
"""
_DISMISS = f"""
UPDATE health_check_alerts
   SET dismissed_at = now(), dismissed_by = $2
 WHERE id = $1 AND state = 'FIRING' AND dismissed_at IS NULL
RETURNING {_COLUMNS}
"""

# The partial unique index admits one FIRING row per (org, type, kind,
# fingerprint): concurrent workers either insert it or update the one that
# won. The texts follow the latest occurrence, so the alert describes the
# problem as it is now. xmax = 0 only on a freshly inserted row.
_OPEN_OR_REPEAT = f"""
INSERT INTO health_check_alerts AS a
    (org_id, integration_type, kind, severity, category, title, message, guidance,
     fingerprint, opened_at, last_seen_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
ON CONFLICT (org_id, integration_type, kind, fingerprint) WHERE state = 'FIRING'
DO UPDATE SET occurrences = a.occurrences + 1,
              last_seen_at = greatest(a.last_seen_at, EXCLUDED.last_seen_at),
              severity = EXCLUDED.severity,
              category = EXCLUDED.category,
              title = EXCLUDED.title,
              message = EXCLUDED.message,
              guidance = EXCLUDED.guidance
RETURNING {_COLUMNS}, (xmax = 0) AS created
"""
_RESOLVE = f"""
UPDATE health_check_alerts
   SET state = 'RESOLVED', resolved_at = $4
 WHERE org_id = $1 AND integration_type = $2 AND kind = ANY($3::text[]) AND state = 'FIRING'
RETURNING {_COLUMNS}
"""
_MARK_NOTIFIED = f"""
UPDATE health_check_alerts SET last_notified_at = $2 WHERE id = $1
RETURNING {_COLUMNS}
"""


# -- reads (API and worker) -----------------------------------------------------


async def list_for_org(
    conn: asyncpg.Connection,
    org_id: UUID,
    *,
    state: str | None,
    first: int,
    after: str | None,
    include_dismissed: bool = True,
) -> Page[Alert]:
    """Newest first (opened_at, id). ValueError for a bad `first` or cursor."""
    ks = keyset(first, after)
    rows = await conn.fetch(_LIST_FOR_ORG, org_id, state, include_dismissed, ks.at, ks.id, ks.limit)
    return page_of([Alert.from_row(r) for r in rows], first, lambda a: (a.opened_at, a.id))


async def active_for(
    conn: asyncpg.Connection, org_id: UUID, integration_types: Sequence[str]
) -> dict[str, list[Alert]]:
    """FIRING alerts (dismissed ones too) of many integration types at once, newest first.

    Every requested type is a key, with an empty list when nothing fires.
    """
    found: dict[str, list[Alert]] = {t: [] for t in integration_types}
    if not found:
        return found
    for row in await conn.fetch(_ACTIVE_FOR, org_id, list(found)):
        found[row["integration_type"]].append(Alert.from_row(row))
    return found


async def get(conn: asyncpg.Connection, alert_id: UUID) -> Alert | None:
    row = await conn.fetchrow(_GET, alert_id)
    return Alert.from_row(row) if row else None


async def org_of(conn: asyncpg.Connection, alert_id: UUID) -> UUID | None:
    """The alert's org, across orgs: global admins only (InsufficientPrivilegeError otherwise)."""
    org: UUID | None = await conn.fetchval(_ORG_OF, alert_id)
    return org


# -- coordinator actions (API) --------------------------------------------------


async def acknowledge(conn: asyncpg.Connection, alert_id: UUID, by: str) -> Alert | None:
    """Acknowledge once; again returns the alert unchanged.

    None when there is no such alert (or it belongs to another org);
    `AlertResolved` when it is resolved.
    """
    return await _act(conn, _ACKNOWLEDGE, alert_id, by)


async def dismiss(conn: asyncpg.Connection, alert_id: UUID, by: str) -> Alert | None:
    """Dismiss once (same outcomes as `acknowledge`). A dismissed alert still fires."""
    return await _act(conn, _DISMISS, alert_id, by)


async def _act(conn: asyncpg.Connection, sql: str, alert_id: UUID, by: str) -> Alert | None:
    row = await conn.fetchrow(sql, alert_id, by)
    if row is not None:
        return Alert.from_row(row)
    # Nothing changed: missing, resolved, or already done (a concurrent writer's
    # commit is visible to this new statement).
    alert = await get(conn, alert_id)
    if alert is not None and alert.state == "RESOLVED":
        raise AlertResolved(alert)
    return alert


# -- alerting engine (worker, service role) -------------------------------------


async def open_or_repeat(
    conn: asyncpg.Connection,
    *,
    org_id: UUID,
    integration_type: str,
    kind: str,
    severity: str,
    category: str | None,
    title: str,
    message: str,
    guidance: str,
    fingerprint: str = "",
    now: datetime,
) -> tuple[Alert, bool]:
    """Open a FIRING alert, or count one more occurrence of the firing one.

    Returns the alert and True when it was opened by this call.
    """
    row = await conn.fetchrow(
        _OPEN_OR_REPEAT,
        org_id,
        integration_type,
        kind,
        severity,
        category,
        title,
        message,
        guidance,
        fingerprint,
        now,
    )
    return Alert.from_row(row), bool(row["created"])


async def resolve(
    conn: asyncpg.Connection,
    *,
    org_id: UUID,
    integration_type: str,
    kinds: Sequence[str],
    now: datetime,
) -> list[Alert]:
    """Resolve the integration's firing alerts of these kinds; return those this call resolved."""
    if not kinds:
        return []
    rows = await conn.fetch(_RESOLVE, org_id, integration_type, list(kinds), now)
    return [Alert.from_row(r) for r in rows]


async def mark_notified(conn: asyncpg.Connection, alert_id: UUID, at: datetime) -> Alert | None:
    """Record when notifications last went out (the repeat interval counts from it)."""
    row = await conn.fetchrow(_MARK_NOTIFIED, alert_id, at)
    return Alert.from_row(row) if row else None

"""Provider-wide incidents (provider_incidents, provider_incident_orgs), and the few
cross-aggregate reads and writes the alerting engine needs.

An incident is global: one provider failing for many orgs at once. The worker
(service role) opens, observes and resolves it; the API role has no grant on
either table and reads them only through `ihm_global_provider_incidents()`,
which refuses anyone but a global admin. At most one incident per provider is
open (a partial unique index), so workers racing to open it agree on one row.

The second half serves the alerting engine with queries its neighbours'
repositories do not have yet (alerts resolved by fingerprint, an export run by
id, expiring credentials). They live here because this module is the engine's
own; they belong in `alerts`, `export_runs` and `credentials` and can move
there unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

import asyncpg

from db.alerts import Alert
from db.export_runs import ExportRun


@dataclass(frozen=True)
class Incident:
    id: UUID
    integration_type: str
    state: str  # OPEN | RESOLVED
    opened_at: datetime
    resolved_at: datetime | None
    orgs_with_provider: int
    failing_orgs: int
    peak_failing_orgs: int
    last_evaluated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Incident:
        return cls(**{name: row[name] for name in _INCIDENT_FIELDS})


@dataclass(frozen=True)
class IncidentSummary:
    """An incident as global admins list it."""

    id: UUID
    integration_type: str
    display_name: str
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    orgs_with_provider: int
    failing_orgs: int
    peak_failing_orgs: int
    affected_orgs: int
    last_evaluated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> IncidentSummary:
        return cls(**dict(row))


@dataclass(frozen=True)
class ProviderFailures:
    """How many orgs have a provider enabled, and how many of them fail on its side."""

    integration_type: str
    orgs: int
    failing_now: int
    failing_recently: int


_INCIDENT_FIELDS = (
    "id",
    "integration_type",
    "state",
    "opened_at",
    "resolved_at",
    "orgs_with_provider",
    "failing_orgs",
    "peak_failing_orgs",
    "last_evaluated_at",
)
_INCIDENT_COLUMNS = ", ".join(_INCIDENT_FIELDS)

# A failure "on the provider's side": unreachable, for a reason other than the
# org's own ($ignored: AUTH, CONFIGURATION). Recently: checked since $since.
_PROVIDER_FAILURES = """
SELECT c.integration_type,
       count(*) AS orgs,
       count(*) FILTER (WHERE s.status = 'unreachable'
                          AND coalesce(s.error_category, 'UNKNOWN') <> ALL($3::text[]))
           AS failing_now,
       count(*) FILTER (WHERE s.status = 'unreachable'
                          AND coalesce(s.error_category, 'UNKNOWN') <> ALL($3::text[])
                          AND s.checked_at >= $2) AS failing_recently
  FROM integration_config c
  LEFT JOIN integration_health_status s
         ON s.org_id = c.org_id AND s.integration_type = c.integration_type
 WHERE c.enabled
   AND ($1::text[] IS NULL OR c.integration_type = ANY($1::text[]))
   AND c.integration_type <> ALL($4::text[])
 GROUP BY c.integration_type
 ORDER BY c.integration_type
"""
_FAILING_ORGS = """
SELECT c.org_id
  FROM integration_config c
  JOIN integration_health_status s
    ON s.org_id = c.org_id AND s.integration_type = c.integration_type
 WHERE c.enabled AND c.integration_type = $1 AND s.status = 'unreachable'
   AND coalesce(s.error_category, 'UNKNOWN') <> ALL($2::text[])
 ORDER BY c.org_id
"""
_OPEN_FOR = f"""
SELECT {_INCIDENT_COLUMNS} FROM provider_incidents
 WHERE state = 'OPEN' AND ($1::text[] IS NULL OR integration_type = ANY($1::text[]))
"""
_OPEN = f"""
INSERT INTO provider_incidents AS i
    (integration_type, opened_at, orgs_with_provider, failing_orgs, peak_failing_orgs,
     last_evaluated_at)
VALUES ($1, $2, $3, $4, $4, $2)
ON CONFLICT (integration_type) WHERE state = 'OPEN' DO NOTHING
RETURNING {_INCIDENT_COLUMNS}
"""
_OBSERVE = f"""
UPDATE provider_incidents
   SET orgs_with_provider = $2, failing_orgs = $3,
       peak_failing_orgs = greatest(peak_failing_orgs, $3), last_evaluated_at = $4
 WHERE id = $1 AND state = 'OPEN'
RETURNING {_INCIDENT_COLUMNS}
"""
_RESOLVE_INCIDENT = f"""
UPDATE provider_incidents
   SET state = 'RESOLVED', resolved_at = $2, last_evaluated_at = $2
 WHERE id = $1 AND state = 'OPEN'
RETURNING {_INCIDENT_COLUMNS}
"""
_JOIN = """
INSERT INTO provider_incident_orgs (incident_id, org_id, joined_at)
SELECT $1, o, $3 FROM unnest($2::uuid[]) AS o ORDER BY o
ON CONFLICT (incident_id, org_id) DO NOTHING
"""
# Compare-and-set: of two workers telling the same org, one wins.
_CLAIM_NOTICES = """
UPDATE provider_incident_orgs SET notified_at = $3
 WHERE incident_id = $1 AND org_id = ANY($2::uuid[]) AND notified_at IS NULL
RETURNING org_id
"""
_LIST_GLOBAL = "SELECT * FROM ihm_global_provider_incidents($1, $2)"


async def provider_failures(
    conn: asyncpg.Connection,
    integration_types: Sequence[str] | None,
    *,
    since: datetime,
    ignored_categories: Sequence[str],
    excluded_types: Sequence[str] = (),
) -> dict[str, ProviderFailures]:
    """Per provider (None: every provider): enabled orgs, failing now and recently."""
    types = list(integration_types) if integration_types is not None else None
    rows = await conn.fetch(
        _PROVIDER_FAILURES, types, since, list(ignored_categories), list(excluded_types)
    )
    return {r["integration_type"]: ProviderFailures(**dict(r)) for r in rows}


async def failing_orgs(
    conn: asyncpg.Connection, integration_type: str, *, ignored_categories: Sequence[str]
) -> list[UUID]:
    rows = await conn.fetch(_FAILING_ORGS, integration_type, list(ignored_categories))
    return [r["org_id"] for r in rows]


async def open_for(
    conn: asyncpg.Connection, integration_types: Sequence[str] | None = None
) -> dict[str, Incident]:
    """The open incident of each provider that has one (None: every provider)."""
    types = list(integration_types) if integration_types is not None else None
    return {r["integration_type"]: Incident.from_row(r) for r in await conn.fetch(_OPEN_FOR, types)}


async def open_incident(
    conn: asyncpg.Connection,
    *,
    integration_type: str,
    now: datetime,
    orgs_with_provider: int,
    failing_orgs: int,
) -> tuple[Incident, bool]:
    """Open the provider's incident, or return the one already open; True when opened here.

    A concurrent opener waits on the unique index until the winner commits, then
    finds its row.
    """
    for _ in range(3):
        row = await conn.fetchrow(_OPEN, integration_type, now, orgs_with_provider, failing_orgs)
        if row is not None:
            return Incident.from_row(row), True
        existing = (await open_for(conn, [integration_type])).get(integration_type)
        if existing is not None:
            return existing, False
    raise RuntimeError(f"could not open or find the {integration_type} incident")


async def observe(
    conn: asyncpg.Connection,
    incident_id: UUID,
    *,
    orgs_with_provider: int,
    failing_orgs: int,
    now: datetime,
) -> Incident | None:
    """Record the latest counts (the cron's; runs do not, to keep off the row's lock)."""
    row = await conn.fetchrow(_OBSERVE, incident_id, orgs_with_provider, failing_orgs, now)
    return Incident.from_row(row) if row else None


async def resolve_incident(
    conn: asyncpg.Connection, incident_id: UUID, now: datetime
) -> Incident | None:
    """Resolve if still open; None when another worker already did."""
    row = await conn.fetchrow(_RESOLVE_INCIDENT, incident_id, now)
    return Incident.from_row(row) if row else None


async def join(
    conn: asyncpg.Connection, incident_id: UUID, org_ids: Sequence[UUID], now: datetime
) -> None:
    """Record these orgs as affected (again: nothing changes)."""
    if org_ids:
        await conn.execute(_JOIN, incident_id, sorted(set(org_ids)), now)


async def claim_notices(
    conn: asyncpg.Connection, incident_id: UUID, org_ids: Sequence[UUID], now: datetime
) -> list[UUID]:
    """Of these affected orgs, those not told yet, now marked told (told by the caller)."""
    if not org_ids:
        return []
    rows = await conn.fetch(_CLAIM_NOTICES, incident_id, sorted(set(org_ids)), now)
    return sorted(r["org_id"] for r in rows)


async def list_global(
    conn: asyncpg.Connection, *, open_only: bool = False, limit: int = 50
) -> list[IncidentSummary]:
    """For global admins (the API role): InsufficientPrivilegeError for anyone else."""
    rows = await conn.fetch(_LIST_GLOBAL, open_only, limit)
    return [IncidentSummary.from_row(r) for r in rows]


# -- the alerting engine's reads and writes on other aggregates ---------------------------

_ALERT_COLUMNS = ", ".join(f.name for f in fields(Alert))
_RUN_COLUMNS = ", ".join(f.name for f in fields(ExportRun))

# Resolve by (kind, fingerprint): a healthy check must not resolve the "expiring"
# AUTH_FAILURE nor the "flapping" DEGRADED alert of the same integration.
_RESOLVE_KEYS = f"""
UPDATE health_check_alerts
   SET state = 'RESOLVED', resolved_at = $5
 WHERE org_id = $1 AND integration_type = $2 AND state = 'FIRING'
   AND (kind, fingerprint) IN (SELECT k, f FROM unnest($3::text[], $4::text[]) AS u(k, f))
RETURNING {_ALERT_COLUMNS}
"""
_FIRING_ACROSS_ORGS = f"""
SELECT {", ".join("a." + f.name for f in fields(Alert))},
       (c.id IS NOT NULL) AS integration_exists
  FROM health_check_alerts a
  LEFT JOIN integration_config c
         ON c.org_id = a.org_id AND c.integration_type = a.integration_type
 WHERE a.state = 'FIRING' AND a.kind = $1 AND a.fingerprint = $2
 ORDER BY a.org_id, a.integration_type
"""
_EXPORT_RUN = f"SELECT {_RUN_COLUMNS} FROM export_runs WHERE id = $1 AND org_id = $2"
_EXPIRING_CREDENTIALS = """
SELECT c.org_id, c.integration_type, cr.expires_at
  FROM integration_credentials cr
  JOIN integration_config c ON c.id = cr.integration_id AND c.org_id = cr.org_id
 WHERE cr.expires_at IS NOT NULL AND cr.expires_at <= $1
 ORDER BY c.org_id, c.integration_type
"""


@dataclass(frozen=True)
class FiringAlert:
    """A firing alert, and whether its integration is still configured."""

    alert: Alert
    integration_exists: bool


@dataclass(frozen=True)
class ExpiringCredentials:
    org_id: UUID
    integration_type: str
    expires_at: datetime


async def resolve_alerts(
    conn: asyncpg.Connection,
    *,
    org_id: UUID,
    integration_type: str,
    keys: Sequence[tuple[str, str]],
    now: datetime,
) -> list[Alert]:
    """Resolve the integration's firing alerts with these (kind, fingerprint) keys."""
    if not keys:
        return []
    kinds, prints = zip(*sorted(set(keys)), strict=True)
    rows = await conn.fetch(_RESOLVE_KEYS, org_id, integration_type, list(kinds), list(prints), now)
    return [Alert.from_row(r) for r in rows]


async def firing_across_orgs(
    conn: asyncpg.Connection, *, kind: str, fingerprint: str
) -> list[FiringAlert]:
    """Every org's firing alerts of one (kind, fingerprint): service role."""
    rows = await conn.fetch(_FIRING_ACROSS_ORGS, kind, fingerprint)
    return [FiringAlert(Alert.from_row(r), r["integration_exists"]) for r in rows]


async def export_run(conn: asyncpg.Connection, org_id: UUID, run_id: UUID) -> ExportRun | None:
    row = await conn.fetchrow(_EXPORT_RUN, run_id, org_id)
    return ExportRun.from_row(row) if row else None


async def expiring_credentials(
    conn: asyncpg.Connection, *, before: datetime
) -> list[ExpiringCredentials]:
    """Every org's credentials that expire before then (or already did): service role."""
    rows = await conn.fetch(_EXPIRING_CREDENTIALS, before)
    return [ExpiringCredentials(**dict(r)) for r in rows]

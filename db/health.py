"""Health status, its history and the raw results log.

The worker writes a whole run with one statement (`record_results`): the raw
log row and the status upsert together; the history row comes from the
trigger on the status table, in the same statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class CheckRecord:
    """One completed check, as the runner hands it to the database."""

    org_id: UUID
    integration_type: str
    status: str  # healthy | degraded | unreachable
    latency_ms: int | None
    checked_at: datetime
    trigger: str = "scheduled"  # scheduled | manual | retry | passive
    error_category: str | None = None
    error_message: str | None = None
    error_guidance: str | None = None
    recovery_action: str | None = None
    docs_url: str | None = None
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class StatusRow:
    org_id: UUID
    integration_type: str
    status: str
    previous_status: str | None
    latency_ms: int | None
    checked_at: datetime
    status_since: datetime
    last_success_at: datetime | None
    consecutive_failures: int
    trigger: str
    error_category: str | None
    error_message: str | None
    error_guidance: str | None
    recovery_action: str | None
    docs_url: str | None

    @property
    def flipped(self) -> bool:
        return self.previous_status != self.status

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StatusRow:
        return cls(**dict(row))


@dataclass(frozen=True)
class IntegrationHealthRow:
    """A configured integration with its current health; status None: never checked."""

    integration_id: UUID
    org_id: UUID
    integration_type: str
    display_name: str
    enabled: bool
    monitoring_mode: str
    next_check_at: datetime | None
    status: str | None
    latency_ms: int | None
    checked_at: datetime | None
    status_since: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int
    error_category: str | None
    error_message: str | None
    error_guidance: str | None
    recovery_action: str | None
    docs_url: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> IntegrationHealthRow:
        return cls(**dict(row))


@dataclass(frozen=True)
class HistoryRow:
    status: str
    latency_ms: int | None
    checked_at: datetime
    error_category: str | None
    error_message: str | None
    trigger: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> HistoryRow:
        return cls(**dict(row))


@dataclass(frozen=True)
class GlobalCounts:
    organizations: int
    integrations: int
    healthy: int
    degraded: int
    unreachable: int
    unknown: int


_STATUS_COLUMNS = (
    "org_id, integration_type, status, previous_status, latency_ms, checked_at, status_since, "
    'last_success_at, consecutive_failures, "trigger" AS trigger, error_category, '
    "error_message, error_guidance, recovery_action, docs_url"
)

# One statement for the whole run. A result older than the stored one (a slow
# check finishing after a newer one) is logged but never overwrites it.
_RECORD_RESULTS = f"""
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                         $12::timestamptz[], $13::timestamptz[], $14::text[])
        AS t(org_id, integration_type, status, latency_ms, checked_at, "trigger",
             error_category, error_message, error_guidance, recovery_action, docs_url,
             scheduled_for, started_at, idempotency_key)
), logged AS (
    INSERT INTO health_check_results
        (org_id, integration_type, checked_at, status, latency_ms, error_category, "trigger",
         scheduled_for, started_at, idempotency_key)
    SELECT org_id, integration_type, checked_at, status, latency_ms, error_category, "trigger",
           scheduled_for, started_at, idempotency_key
      FROM input
)
INSERT INTO integration_health_status AS s
    (org_id, integration_type, status, latency_ms, checked_at, "trigger", error_category,
     error_message, error_guidance, recovery_action, docs_url, status_since)
SELECT org_id, integration_type, status, latency_ms, checked_at, "trigger", error_category,
       error_message, error_guidance, recovery_action, docs_url, checked_at
  FROM input
ON CONFLICT (org_id, integration_type) DO UPDATE
   SET status = EXCLUDED.status,
       latency_ms = EXCLUDED.latency_ms,
       checked_at = EXCLUDED.checked_at,
       "trigger" = EXCLUDED."trigger",
       error_category = EXCLUDED.error_category,
       error_message = EXCLUDED.error_message,
       error_guidance = EXCLUDED.error_guidance,
       recovery_action = EXCLUDED.recovery_action,
       docs_url = EXCLUDED.docs_url
 WHERE s.checked_at <= EXCLUDED.checked_at
RETURNING {_STATUS_COLUMNS}
"""

_ORG_HEALTH = """
SELECT c.id AS integration_id, c.org_id, c.integration_type, t.display_name, c.enabled,
       c.monitoring_mode, c.next_check_at, s.status, s.latency_ms, s.checked_at,
       s.status_since, s.last_success_at, coalesce(s.consecutive_failures, 0)
           AS consecutive_failures,
       s.error_category, s.error_message, s.error_guidance, s.recovery_action, s.docs_url
  FROM integration_config c
  JOIN integration_types t ON t.key = c.integration_type
  LEFT JOIN integration_health_status s USING (org_id, integration_type)
 WHERE c.org_id = $1
 ORDER BY t.display_name, c.integration_type
"""

_HISTORY = """
SELECT status, latency_ms, checked_at, error_category, error_message, "trigger" AS trigger
  FROM health_check_history
 WHERE org_id = $1 AND integration_type = $2 AND checked_at >= $3
 ORDER BY checked_at DESC, id DESC
 LIMIT $4
"""

_GLOBAL_COUNTS = "SELECT * FROM ihm_global_health_summary()"

# Newest rows per integration for several integrations at once (DataLoaders).
_HISTORY_MANY = """
SELECT integration_type, status, latency_ms, checked_at, error_category, error_message,
       "trigger" AS trigger
  FROM (SELECT h.*, row_number() OVER (PARTITION BY integration_type
                                       ORDER BY checked_at DESC, id DESC) AS n
          FROM health_check_history h
         WHERE org_id = $1 AND integration_type = ANY($2) AND checked_at >= $3) ranked
 WHERE n <= $4
 ORDER BY integration_type, checked_at DESC, n
"""


async def record_results(
    conn: asyncpg.Connection, records: Sequence[CheckRecord]
) -> list[StatusRow]:
    """Write a run; return the status rows it changed (stale results excluded)."""
    if not records:
        return []
    columns = list(
        zip(
            *(
                (
                    r.org_id,
                    r.integration_type,
                    r.status,
                    r.latency_ms,
                    r.checked_at,
                    r.trigger,
                    r.error_category,
                    r.error_message,
                    r.error_guidance,
                    r.recovery_action,
                    r.docs_url,
                    r.scheduled_for,
                    r.started_at,
                    r.idempotency_key,
                )
                for r in records
            ),
            strict=True,
        )
    )
    rows = await conn.fetch(_RECORD_RESULTS, *columns)
    return [StatusRow.from_row(r) for r in rows]


async def org_health(conn: asyncpg.Connection, org_id: UUID) -> list[IntegrationHealthRow]:
    return [IntegrationHealthRow.from_row(r) for r in await conn.fetch(_ORG_HEALTH, org_id)]


async def history(
    conn: asyncpg.Connection,
    org_id: UUID,
    integration_type: str,
    *,
    since: datetime,
    limit: int = 96,
) -> list[HistoryRow]:
    rows = await conn.fetch(_HISTORY, org_id, integration_type, since, limit)
    return [HistoryRow.from_row(r) for r in rows]


async def history_many(
    conn: asyncpg.Connection,
    org_id: UUID,
    integration_types: Sequence[str],
    *,
    since: datetime,
    limit: int = 96,
) -> dict[str, list[HistoryRow]]:
    found: dict[str, list[HistoryRow]] = {k: [] for k in integration_types}
    for row in await conn.fetch(_HISTORY_MANY, org_id, list(integration_types), since, limit):
        values = dict(row)
        kind = values.pop("integration_type")
        found.setdefault(kind, []).append(HistoryRow(**values))
    return found


async def org_health_for(
    conn: asyncpg.Connection, org_id: UUID, integration_types: Sequence[str]
) -> dict[str, IntegrationHealthRow]:
    rows = await org_health(conn, org_id)
    wanted = set(integration_types)
    return {r.integration_type: r for r in rows if r.integration_type in wanted}


async def global_counts(conn: asyncpg.Connection) -> GlobalCounts:
    """Through the SECURITY DEFINER function: refused unless the claims are global_admin."""
    row = await conn.fetchrow(_GLOBAL_COUNTS)
    return GlobalCounts(**dict(row))

"""Claiming due integrations, rescheduling them, and the ledger of written slots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class DueRow:
    integration_id: UUID
    org_id: UUID
    integration_type: str
    check_interval_seconds: int
    min_interval_seconds: int
    slot: datetime
    consecutive_failures: int
    rate_limited_streak: int

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DueRow:
        return cls(**dict(row))


# Rows locked by another scheduler are skipped, so overlapping ticks and several
# workers each claim different integrations.
_CLAIM_DUE = """
SELECT c.id AS integration_id, c.org_id, c.integration_type, c.check_interval_seconds,
       t.min_interval_seconds, c.next_check_at AS slot,
       coalesce(s.consecutive_failures, 0) AS consecutive_failures,
       (SELECT count(*) FROM (SELECT h.error_category FROM health_check_history h
                               WHERE h.org_id = c.org_id
                                 AND h.integration_type = c.integration_type
                               ORDER BY h.checked_at DESC, h.id DESC LIMIT 3) recent
         WHERE recent.error_category = 'RATE_LIMITED')::int AS rate_limited_streak
  FROM integration_config c
  JOIN integration_types t ON t.key = c.integration_type
  LEFT JOIN integration_health_status s USING (org_id, integration_type)
 WHERE c.enabled AND c.monitoring_mode = 'ACTIVE' AND c.next_check_at <= $1
 ORDER BY c.next_check_at, c.id
 LIMIT $2
   FOR UPDATE OF c SKIP LOCKED
"""
_RESCHEDULE = """
UPDATE integration_config c SET next_check_at = u.next_check_at
  FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, next_check_at)
 WHERE c.id = u.id
"""
_GO_PASSIVE = """
UPDATE integration_config c
   SET monitoring_mode = 'PASSIVE', passive_until = u.until, next_check_at = u.until
  FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, until)
 WHERE c.id = u.id
"""
# Only automatic switches (passive_until set) end by themselves; an admin's choice stays.
_REACTIVATE = """
UPDATE integration_config
   SET monitoring_mode = 'ACTIVE', passive_until = NULL, next_check_at = $1
 WHERE monitoring_mode = 'PASSIVE' AND passive_until IS NOT NULL AND passive_until <= $1
"""
_CLAIM_SLOTS = """
INSERT INTO check_slots (integration_id, slot, org_id)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[])
ON CONFLICT DO NOTHING
RETURNING integration_id
"""
_PRUNE_SLOTS = "DELETE FROM check_slots WHERE recorded_at < $1"


async def claim_due(conn: asyncpg.Connection, now: datetime, limit: int) -> list[DueRow]:
    """Lock up to `limit` due integrations for this transaction (the caller reschedules)."""
    return [DueRow.from_row(r) for r in await conn.fetch(_CLAIM_DUE, now, limit)]


async def reschedule(
    conn: asyncpg.Connection, ids: Sequence[UUID], next_times: Sequence[datetime]
) -> None:
    if ids:
        await conn.execute(_RESCHEDULE, list(ids), list(next_times))


async def go_passive(
    conn: asyncpg.Connection, ids: Sequence[UUID], until: Sequence[datetime]
) -> None:
    if ids:
        await conn.execute(_GO_PASSIVE, list(ids), list(until))


async def reactivate_passive(conn: asyncpg.Connection, now: datetime) -> int:
    status: str = await conn.execute(_REACTIVATE, now)
    return int(status.split()[-1])


async def claim_slots(
    conn: asyncpg.Connection, slots: Sequence[tuple[UUID, datetime, UUID]]
) -> set[UUID]:
    """Record (integration, slot, org) as written; return the integrations not yet written."""
    if not slots:
        return set()
    ids, times, orgs = (list(x) for x in zip(*slots, strict=True))
    rows = await conn.fetch(_CLAIM_SLOTS, ids, times, orgs)
    return {r["integration_id"] for r in rows}


async def prune_slots(conn: asyncpg.Connection, before: datetime) -> int:
    status: str = await conn.execute(_PRUNE_SLOTS, before)
    return int(status.split()[-1])

"""The raw results log: day partitions ahead of time, 30-day retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg

RETENTION = timedelta(days=30)

_ENSURE_PARTITIONS = "SELECT ihm_ensure_result_partitions($1::date, $2::integer)"
_PRUNE = "SELECT dropped_partitions, deleted_rows FROM ihm_prune_results($1::interval)"


@dataclass(frozen=True)
class PruneOutcome:
    dropped_partitions: int
    deleted_rows: int


async def ensure_partitions(conn: asyncpg.Connection, first_day: date, days: int) -> int:
    """Create the missing day partitions from `first_day`; return how many were created."""
    created: int = await conn.fetchval(_ENSURE_PARTITIONS, first_day, days)
    return created


async def prune(conn: asyncpg.Connection, keep: timedelta = RETENTION) -> PruneOutcome:
    row = await conn.fetchrow(_PRUNE, keep)
    return PruneOutcome(row["dropped_partitions"], row["deleted_rows"])

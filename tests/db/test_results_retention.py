from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import pytest

from db import results
from db.scope import Claims, as_caller, as_service
from tests.factories import make_integration, make_org

_INSERT = (
    'INSERT INTO health_check_results (org_id, integration_type, checked_at, status, "trigger") '
    "VALUES ($1, 'http', $2, 'healthy', 'scheduled')"
)


async def _partitions(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'health_check_results'::regclass"
    )
    return {r["relname"] for r in rows}


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        org_id = await make_org(conn)
        await make_integration(conn, org_id)
    return org_id


async def test_retention_deletes_results_older_than_30_days_and_keeps_the_rest(
    pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_service(pool) as conn:
        now: datetime = await conn.fetchval("SELECT now()")
        ages = {
            "40 days": timedelta(days=40),
            "31 days": timedelta(days=31),
            "30 days and a minute": timedelta(days=30, minutes=1),
            "30 days less a minute": timedelta(days=30) - timedelta(minutes=1),
            "29 days": timedelta(days=29),
            "1 hour": timedelta(hours=1),
        }
        await results.ensure_partitions(conn, (now - timedelta(days=41)).date(), 43)
        for age in ages.values():
            await conn.execute(_INSERT, org, now - age)

    async with as_service(pool) as conn:
        outcome = await results.prune(conn)
        kept = await conn.fetch(
            "SELECT checked_at FROM health_check_results WHERE org_id = $1 ORDER BY checked_at",
            org,
        )
        left_partitions = await _partitions(conn)

    expected = [now - ages[k] for k in ("30 days less a minute", "29 days", "1 hour")]
    assert [r["checked_at"] for r in kept] == expected
    assert outcome.dropped_partitions >= 10
    oldest_day = min(p for p in left_partitions if p != "health_check_results_default")
    cutoff_day = (now - timedelta(days=30)).astimezone(UTC).strftime("%Y%m%d")
    assert oldest_day == f"health_check_results_p{cutoff_day}"


async def test_results_that_arrive_before_their_day_partition_are_kept_and_moved(
    pool: asyncpg.Pool, org: UUID
) -> None:
    far = datetime.now(UTC) + timedelta(days=20)
    async with as_service(pool) as conn:
        await conn.execute(_INSERT, org, far)
        in_default = await conn.fetchval("SELECT count(*) FROM health_check_results_default")

        created = await results.ensure_partitions(conn, far.date(), 1)

        in_default_after = await conn.fetchval("SELECT count(*) FROM health_check_results_default")
        total = await conn.fetchval("SELECT count(*) FROM health_check_results")
        again = await results.ensure_partitions(conn, far.date(), 1)
    assert (in_default, created, in_default_after, total, again) == (1, 1, 0, 1, 0)


async def test_the_api_role_may_not_run_retention(pool: asyncpg.Pool, org: UUID) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, Claims("u", "org_admin", org)) as conn:
            await results.prune(conn)

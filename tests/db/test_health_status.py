from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from db import health
from db.scope import as_service
from tests.factories import check_record, make_integration, make_org

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

_RAW_UPSERT = """
INSERT INTO integration_health_status (org_id, integration_type, status, latency_ms, checked_at)
VALUES ($1, 'http', $2, $3, $4)
ON CONFLICT (org_id, integration_type) DO UPDATE
   SET status = EXCLUDED.status, latency_ms = EXCLUDED.latency_ms,
       checked_at = EXCLUDED.checked_at
"""


async def test_an_upsert_inserts_a_history_row_alongside(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await make_integration(conn, org)

        await conn.execute(_RAW_UPSERT, org, "healthy", 40, T0)
        await conn.execute(_RAW_UPSERT, org, "unreachable", None, T0 + timedelta(minutes=15))

        rows = await health.history(conn, org, "http", since=T0 - timedelta(days=1))
    assert [(r.status, r.latency_ms, r.checked_at) for r in rows] == [
        ("unreachable", None, T0 + timedelta(minutes=15)),
        ("healthy", 40, T0),
    ]


async def test_a_hundred_upserts_leave_exactly_the_newest_96_history_rows(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        other = await make_org(conn)
        await make_integration(conn, org)
        await make_integration(conn, other)
        await conn.execute(_RAW_UPSERT, other, "healthy", 1, T0)
        times = [T0 + timedelta(minutes=15 * i) for i in range(100)]

        for i, at in enumerate(times):
            await conn.execute(_RAW_UPSERT, org, "healthy", i, at)

        kept = await conn.fetch(
            "SELECT checked_at, latency_ms FROM health_check_history "
            "WHERE org_id = $1 ORDER BY checked_at",
            org,
        )
        others = await conn.fetchval(
            "SELECT count(*) FROM health_check_history WHERE org_id = $1", other
        )
    assert [r["checked_at"] for r in kept] == times[4:]
    assert [r["latency_ms"] for r in kept] == list(range(4, 100))
    assert others == 1


async def test_the_unique_key_refuses_a_second_current_status_row(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await make_integration(conn, org)
        insert = (
            "INSERT INTO integration_health_status (org_id, integration_type, status, checked_at) "
            "VALUES ($1, 'http', 'healthy', now())"
        )
        await conn.execute(insert, org)

        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, org)


async def test_a_status_needs_a_known_value_and_a_check_time(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await make_integration(conn, org)
    sql = (
        "INSERT INTO integration_health_status (org_id, integration_type, status, checked_at) "
        "VALUES ($1, 'http', $2, $3)"
    )

    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(sql, org, "fine", T0)
    with pytest.raises(asyncpg.NotNullViolationError):
        await pool.execute(sql, org, "healthy", None)


async def test_recording_results_tracks_flips_streaks_and_last_success(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await make_integration(conn, org)

        async def record(status: str, minutes: int) -> health.StatusRow:
            rows = await health.record_results(
                conn,
                [
                    check_record(
                        org,
                        status=status,
                        checked_at=T0 + timedelta(minutes=minutes),
                        error_category=None if status == "healthy" else "NETWORK",
                    )
                ],
            )
            return rows[0]

        first = await record("healthy", 0)
        down = await record("unreachable", 15)
        still_down = await record("unreachable", 30)
        back = await record("healthy", 45)

    assert (first.previous_status, first.flipped, first.consecutive_failures) == (None, True, 0)
    assert (down.previous_status, down.flipped, down.consecutive_failures) == (
        "healthy",
        True,
        1,
    )
    assert not still_down.flipped
    assert still_down.consecutive_failures == 2
    assert still_down.status_since == T0 + timedelta(minutes=15)
    assert still_down.last_success_at == T0
    assert back.flipped
    assert back.consecutive_failures == 0
    assert back.last_success_at == T0 + timedelta(minutes=45)


async def test_a_result_older_than_the_stored_one_is_logged_but_not_applied(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await make_integration(conn, org)
        await health.record_results(conn, [check_record(org, checked_at=T0)])

        stale = await health.record_results(
            conn, [check_record(org, status="unreachable", checked_at=T0 - timedelta(minutes=1))]
        )

        current = await conn.fetchval(
            "SELECT status FROM integration_health_status WHERE org_id = $1", org
        )
        logged = await conn.fetchval(
            "SELECT count(*) FROM health_check_results WHERE org_id = $1", org
        )
    assert stale == []
    assert current == "healthy"
    assert logged == 2


async def test_one_run_writes_every_integration_with_one_statement(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        for kind in ("http", "slack", "xledger"):
            await make_integration(conn, org, kind)

        rows = await health.record_results(
            conn,
            [
                check_record(org, "http", "healthy", checked_at=T0),
                check_record(
                    org, "slack", "degraded", checked_at=T0, error_category="RATE_LIMITED"
                ),
                check_record(org, "xledger", "unreachable", checked_at=T0, error_category="AUTH"),
            ],
        )
        listed = await health.org_health(conn, org)

    assert sorted((r.integration_type, r.status) for r in rows) == [
        ("http", "healthy"),
        ("slack", "degraded"),
        ("xledger", "unreachable"),
    ]
    assert {r.integration_type: r.error_category for r in listed} == {
        "http": None,
        "slack": "RATE_LIMITED",
        "xledger": "AUTH",
    }


async def test_org_health_lists_never_checked_integrations_with_their_display_name(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await make_integration(conn, org, "dynamics365", config={"tenantId": "t"})

        (row,) = await health.org_health(conn, org)

    assert row.display_name == "Microsoft Dynamics 365 Business Central"
    assert row.status is None
    assert row.checked_at is None
    assert row.consecutive_failures == 0


async def test_removing_an_integration_removes_its_status_and_history(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await make_integration(conn, org)
        await health.record_results(conn, [check_record(org, checked_at=T0)])

        await conn.execute("DELETE FROM integration_config WHERE org_id = $1", org)

        left = await conn.fetchval(
            "SELECT (SELECT count(*) FROM integration_health_status WHERE org_id = $1)"
            " + (SELECT count(*) FROM health_check_history WHERE org_id = $1)",
            org,
        )
    assert left == 0


async def test_an_interval_below_the_type_floor_is_refused(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)

        with pytest.raises(asyncpg.CheckViolationError, match="below the xledger floor"):
            await make_integration(conn, org, "xledger", check_interval_seconds=60)

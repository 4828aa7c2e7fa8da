"""System-wide figures for global admins (SECURITY DEFINER functions of 0006)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from db import admin
from db.scope import Claims, as_caller, as_service
from tests.factories import make_integration, make_org

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(hours=24)
GLOBAL_ADMIN = Claims(sub="root", role="global_admin", org_id=None)


@dataclass(frozen=True)
class Fleet:
    org_a: UUID
    org_b: UUID


async def _set_status(
    conn: asyncpg.Connection, org: UUID, integration_type: str, status: str, since: datetime
) -> None:
    """A current status that began at `since` (the trigger derives status_since from it)."""
    await make_integration(conn, org, integration_type)
    await conn.execute(
        "INSERT INTO integration_health_status (org_id, integration_type, status, latency_ms, "
        "checked_at, error_category, status_since) VALUES ($1, $2, $3, 50, $4, $5, $4)",
        org,
        integration_type,
        status,
        since,
        None if status == "healthy" else "NETWORK",
    )


async def _never_checked(
    conn: asyncpg.Connection, org: UUID, integration_type: str, configured_at: datetime
) -> None:
    await make_integration(conn, org, integration_type)
    await conn.execute(
        "UPDATE integration_config SET created_at = $3 WHERE org_id = $1 AND integration_type = $2",
        org,
        integration_type,
        configured_at,
    )


async def _log(
    conn: asyncpg.Connection,
    org: UUID,
    integration_type: str,
    status: str,
    latency_ms: int | None,
    *,
    at: datetime = NOW - timedelta(hours=1),
    scheduled_for: datetime | None = None,
    started_at: datetime | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO health_check_results (org_id, integration_type, checked_at, status, "
        'latency_ms, "trigger", scheduled_for, started_at) '
        "VALUES ($1, $2, $3, $4, $5, 'scheduled', $6, $7)",
        org,
        integration_type,
        at,
        status,
        latency_ms,
        scheduled_for,
        started_at,
    )


@pytest.fixture
async def fleet(pool: asyncpg.Pool) -> Fleet:
    """Two orgs, every kind of health, across every provider but one left unconfigured."""
    async with as_service(pool) as conn:
        org_a = await make_org(conn, "A")
        org_b = await make_org(conn, "B")
        await _set_status(conn, org_a, "http", "healthy", NOW - timedelta(hours=5))
        await _set_status(conn, org_a, "slack", "unreachable", NOW - timedelta(hours=3))
        await _set_status(conn, org_b, "slack", "unreachable", NOW - timedelta(hours=1))
        await _set_status(conn, org_b, "xledger", "degraded", NOW - timedelta(hours=2))
        await _set_status(conn, org_b, "dynamics365", "degraded", NOW - timedelta(minutes=30))
        await _never_checked(conn, org_b, "google_calendar", NOW - timedelta(days=1))
        await _never_checked(conn, org_a, "google_calendar", NOW - timedelta(days=2))
    return Fleet(org_a, org_b)


# -- the worst integrations --------------------------------------------------------


async def test_unhealthy_integrations_come_worst_first_across_orgs(
    pool: asyncpg.Pool, fleet: Fleet
) -> None:
    async with as_caller(pool, GLOBAL_ADMIN) as conn:
        rows = await admin.unhealthy_integrations(conn, 50)

    assert [(r.org_id, r.integration_type, r.status) for r in rows] == [
        # Unreachable, the longest first.
        (fleet.org_a, "slack", "unreachable"),
        (fleet.org_b, "slack", "unreachable"),
        # Degraded, the longest first.
        (fleet.org_b, "xledger", "degraded"),
        (fleet.org_b, "dynamics365", "degraded"),
        # Never checked, configured the longest ago first.
        (fleet.org_a, "google_calendar", None),
        (fleet.org_b, "google_calendar", None),
    ]


async def test_unhealthy_integrations_carry_the_org_health_shape(
    pool: asyncpg.Pool, fleet: Fleet
) -> None:
    async with as_caller(pool, GLOBAL_ADMIN) as conn:
        worst, *_, never = await admin.unhealthy_integrations(conn, 50)

    assert worst.display_name == "Slack"
    assert worst.status_since == NOW - timedelta(hours=3)
    assert worst.consecutive_failures == 1
    assert worst.error_category == "NETWORK"
    assert worst.enabled and worst.monitoring_mode == "ACTIVE"
    assert never.display_name == "Google Calendar"
    assert never.checked_at is None and never.consecutive_failures == 0


async def test_unhealthy_integrations_stop_at_the_limit(pool: asyncpg.Pool, fleet: Fleet) -> None:
    async with as_caller(pool, GLOBAL_ADMIN) as conn:
        two = await admin.unhealthy_integrations(conn, 2)
        none = await admin.unhealthy_integrations(conn, 0)

    assert [(r.org_id, r.integration_type) for r in two] == [
        (fleet.org_a, "slack"),
        (fleet.org_b, "slack"),
    ]
    assert none == []


# -- per provider ------------------------------------------------------------------


async def test_provider_stats_count_current_statuses_for_every_type(
    pool: asyncpg.Pool, fleet: Fleet
) -> None:
    async with as_caller(pool, GLOBAL_ADMIN) as conn:
        stats = await admin.provider_stats(conn, SINCE)

    counts = {
        s.integration_type: (s.integrations, s.healthy, s.degraded, s.unreachable, s.unknown)
        for s in stats
    }
    assert counts == {
        "http": (1, 1, 0, 0, 0),
        "slack": (2, 0, 0, 2, 0),
        "xledger": (1, 0, 1, 0, 0),
        "dynamics365": (1, 0, 1, 0, 0),
        "google_calendar": (2, 0, 0, 0, 2),
        "gmail": (0, 0, 0, 0, 0),
    }
    assert [s.display_name for s in stats] == sorted(s.display_name for s in stats)


async def test_provider_stats_measure_the_checks_of_the_window(
    pool: asyncpg.Pool, fleet: Fleet
) -> None:
    async with as_service(pool) as conn:
        # http: 20 checks at 10, 20, ... 200 ms, one of them failed.
        for i in range(1, 21):
            status = "unreachable" if i == 20 else "healthy"
            await _log(conn, fleet.org_a, "http", status, i * 10)
        # slack: across both orgs, two timeouts without a latency.
        await _log(conn, fleet.org_a, "slack", "healthy", 100)
        await _log(conn, fleet.org_b, "slack", "healthy", 300)
        await _log(conn, fleet.org_a, "slack", "unreachable", None)
        await _log(conn, fleet.org_b, "slack", "unreachable", None)
        # Before the window: not counted.
        await _log(conn, fleet.org_a, "http", "unreachable", 9000, at=SINCE - timedelta(hours=1))

    async with as_caller(pool, GLOBAL_ADMIN) as conn:
        stats = {s.integration_type: s for s in await admin.provider_stats(conn, SINCE)}

    http = stats["http"]
    assert http.checks == 20
    assert http.success_rate == pytest.approx(0.95)
    assert http.avg_latency_ms == pytest.approx(105.0)
    # percentile_cont: 0.95 * (20 - 1) = 18.05 -> 190 + 0.05 * (200 - 190)
    assert http.p95_latency_ms == pytest.approx(190.5)
    slack = stats["slack"]
    assert slack.checks == 4
    assert slack.success_rate == pytest.approx(0.5)
    assert slack.avg_latency_ms == pytest.approx(200.0)
    assert slack.p95_latency_ms == pytest.approx(290.0)
    gmail = stats["gmail"]
    assert (gmail.checks, gmail.success_rate, gmail.avg_latency_ms, gmail.p95_latency_ms) == (
        0,
        None,
        None,
        None,
    )


# -- scheduler drift -----------------------------------------------------------------


async def test_scheduler_stats_measure_drift_of_scheduled_checks(
    pool: asyncpg.Pool, fleet: Fleet
) -> None:
    slot = NOW - timedelta(hours=2)
    async with as_service(pool) as conn:
        for drift in (0, 60, 120, 400, 900):
            await _log(
                conn,
                fleet.org_a,
                "http",
                "healthy",
                10,
                scheduled_for=slot,
                started_at=slot + timedelta(seconds=drift),
            )
        # Manual checks have no slot; older checks are outside the window.
        await _log(conn, fleet.org_a, "http", "healthy", 10)
        await _log(
            conn,
            fleet.org_a,
            "http",
            "healthy",
            10,
            at=SINCE - timedelta(hours=1),
            scheduled_for=slot,
            started_at=slot + timedelta(hours=2),
        )

    async with as_caller(pool, GLOBAL_ADMIN) as conn:
        stats = await admin.scheduler_stats(conn, SINCE)

    assert stats == admin.SchedulerStats(
        late_runs=2, p50_drift_seconds=120.0, max_drift_seconds=900.0
    )


async def test_scheduler_stats_without_scheduled_checks_are_empty(
    pool: asyncpg.Pool, fleet: Fleet
) -> None:
    async with as_caller(pool, GLOBAL_ADMIN) as conn:
        stats = await admin.scheduler_stats(conn, SINCE)

    assert stats == admin.SchedulerStats(
        late_runs=0, p50_drift_seconds=None, max_drift_seconds=None
    )


# -- refusal -------------------------------------------------------------------------

CALLS: dict[str, Callable[[asyncpg.Connection], Awaitable[Any]]] = {
    "unhealthy_integrations": lambda c: admin.unhealthy_integrations(c, 10),
    "provider_stats": lambda c: admin.provider_stats(c, SINCE),
    "scheduler_stats": lambda c: admin.scheduler_stats(c, SINCE),
}


@pytest.mark.parametrize("role", ["member", "coordinator", "org_admin", "service"])
@pytest.mark.parametrize("function", sorted(CALLS))
async def test_admin_functions_refuse_anyone_but_global_admins(
    pool: asyncpg.Pool, fleet: Fleet, function: str, role: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="global_admin"):
        async with as_caller(pool, Claims("user-1", role, fleet.org_a)) as conn:
            await CALLS[function](conn)


@pytest.mark.parametrize("function", sorted(CALLS))
async def test_admin_functions_refuse_a_connection_without_claims(
    pool: asyncpg.Pool, function: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="global_admin"):
        async with as_service(pool) as conn:
            await CALLS[function](conn)


async def test_admin_functions_are_not_executable_by_public(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        "SELECT p.proname, p.prosecdef, "
        "has_function_privilege('ihm_api', p.oid, 'EXECUTE') AS api, "
        "coalesce(array_to_string(p.proacl, ','), '') AS acl "
        "FROM pg_proc p WHERE p.proname LIKE 'ihm_global_%'"
    )

    assert {r["proname"] for r in rows} >= {
        "ihm_global_unhealthy_integrations",
        "ihm_global_provider_stats",
        "ihm_global_scheduler_stats",
        "ihm_global_alert_org",
        "ihm_global_channel_org",
    }
    for row in rows:
        assert row["prosecdef"] and row["api"], row["proname"]
        # An ACL entry "=X/owner" would grant EXECUTE to PUBLIC.
        assert not any(entry.startswith("=") for entry in row["acl"].split(",")), row["proname"]

"""Export runs reported by the export job: EXPORT_FAILED alerts, and health in PASSIVE mode."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from db import export_runs, health
from db.scope import Claims, as_caller, as_service
from tests.factories import make_integration, make_org
from tests.workers.alerting.helpers import MIN, T0, alerts_of, firing, sent, set_rule
from workers.alerting.jobs import export_run_job_id, export_run_reported

KEY = "xledger:2026-11-01"


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        org_id = await make_org(conn)
        await make_integration(conn, org_id, "xledger", config={})
    return org_id


async def report(
    pool: asyncpg.Pool, org: UUID, status: str, *, key: str = KEY, **fields: Any
) -> export_runs.ExportRun:
    """`reportExportRun` as the API stores it (the service role of the export job)."""
    values: dict[str, Any] = {
        "integration_type": "xledger",
        "idempotency_key": key,
        "status": status,
        "scheduled_for": None,
        "started_at": None,
        "finished_at": None,
        "error_category": None,
        "error_message": None,
    }
    values.update(fields)
    claims = Claims(sub="export-job", role="service", org_id=org)
    async with as_caller(pool, claims) as conn:
        run, _ = await export_runs.report(conn, org_id=org, **values)
    return run


async def reported(pool: asyncpg.Pool, run: export_runs.ExportRun, at: datetime) -> Any:
    """What the API enqueues after reportExportRun, run as the worker would."""
    ctx = {"pool": pool, "redis": None, "clock": lambda: at}
    return await export_run_reported(ctx, str(run.org_id), str(run.id))


async def test_a_failed_export_opens_an_alert_and_tells_the_org_it_was_a_network_timeout(
    pool: asyncpg.Pool, org: UUID
) -> None:
    run = await report(pool, org, "FAILED", error_category="TIMEOUT", error_message="no answer")

    result = await reported(pool, run, T0)

    [alert] = await alerts_of(pool, org)
    assert (alert.kind, alert.severity, alert.state) == ("EXPORT_FAILED", "CRITICAL", "FIRING")
    assert (alert.fingerprint, alert.category) == (KEY, "TIMEOUT")
    assert result == {"alerts": [str(alert.id)]}
    [notification] = await sent(pool, org)
    assert notification.title == "Xledger export failed: a network timeout"
    assert "a network timeout" in notification.body and KEY in notification.body
    assert notification.alert_id == alert.id


async def test_a_job_run_twice_for_one_report_counts_and_notifies_once(
    pool: asyncpg.Pool, org: UUID
) -> None:
    run = await report(pool, org, "FAILED", error_category="NETWORK")

    await reported(pool, run, T0)
    await reported(pool, run, T0 + MIN)

    [alert] = await alerts_of(pool, org)
    assert alert.occurrences == 1
    assert len(await sent(pool, org)) == 1


async def test_two_failed_runs_are_two_alerts(pool: asyncpg.Pool, org: UUID) -> None:
    first = await report(pool, org, "FAILED", key="xledger:2026-11-01", error_category="NETWORK")
    second = await report(pool, org, "FAILED", key="xledger:2026-11-02", error_category="NETWORK")

    await reported(pool, first, T0)
    await reported(pool, second, T0 + MIN)

    assert sorted(f for _, f in await firing(pool, org)) == [
        "xledger:2026-11-01",
        "xledger:2026-11-02",
    ]
    assert len(await sent(pool, org)) == 2


async def test_a_succeeded_run_resolves_the_integrations_export_alerts(
    pool: asyncpg.Pool, org: UUID
) -> None:
    failed = await report(pool, org, "FAILED", error_category="PROVIDER_ERROR")
    await reported(pool, failed, T0)

    succeeded = await report(pool, org, "SUCCEEDED", key="xledger:2026-11-02")
    await reported(pool, succeeded, T0 + MIN)

    assert await firing(pool, org) == []
    assert [n.title for n in await sent(pool, org)] == [
        "Xledger export failed",
        "Xledger exports work again",
    ]


async def test_a_running_export_changes_nothing(pool: asyncpg.Pool, org: UUID) -> None:
    run = await report(pool, org, "RUNNING")

    assert await reported(pool, run, T0) == {"alerts": []}
    assert await alerts_of(pool, org) == []


async def test_a_passive_integrations_health_follows_its_exports(
    pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_service(pool) as conn:
        await make_integration(conn, org, "xledger", config={}, monitoring_mode="PASSIVE")
    await set_rule(pool, org, failure_threshold=1)

    failed = await report(
        pool, org, "FAILED", finished_at=T0, error_category="TIMEOUT", error_message="timed out"
    )
    await reported(pool, failed, T0 + MIN)

    async with as_service(pool) as conn:
        [row] = await health.org_health(conn, org)
    assert (row.status, row.error_category, row.checked_at) == ("unreachable", "TIMEOUT", T0)
    assert sorted(await firing(pool, org)) == [("EXPORT_FAILED", KEY), ("UNREACHABLE", "")]
    [notification] = await sent(pool, org)  # both alerts of the one report, together
    assert notification.title == "Xledger export failed: a network timeout"
    assert len(notification.body.splitlines()) == 2

    succeeded = await report(
        pool, org, "SUCCEEDED", key="xledger:2026-11-02", finished_at=T0 + 60 * MIN
    )
    await reported(pool, succeeded, T0 + 61 * MIN)

    async with as_service(pool) as conn:
        [row] = await health.org_health(conn, org)
        trigger = await conn.fetchval(
            "SELECT trigger FROM health_check_history ORDER BY checked_at DESC LIMIT 1"
        )
    assert (row.status, trigger) == ("healthy", "passive")
    assert await firing(pool, org) == []


async def test_an_export_failing_for_its_own_reasons_says_nothing_about_passive_health(
    pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_service(pool) as conn:
        await make_integration(conn, org, "xledger", config={}, monitoring_mode="PASSIVE")

    run = await report(
        pool, org, "FAILED", error_category="PROVIDER_ERROR", error_message="bad row"
    )
    await reported(pool, run, T0)

    async with as_service(pool) as conn:
        [row] = await health.org_health(conn, org)
    assert row.status is None
    assert await firing(pool, org) == [("EXPORT_FAILED", KEY)]


async def test_an_active_integration_is_not_given_health_from_exports(
    pool: asyncpg.Pool, org: UUID
) -> None:
    run = await report(pool, org, "FAILED", error_category="AUTH")

    await reported(pool, run, T0)

    async with as_service(pool) as conn:
        [row] = await health.org_health(conn, org)
    assert row.status is None


def test_the_job_id_for_a_report_is_one_per_report() -> None:
    assert export_run_job_id("r1", T0) == export_run_job_id("r1", T0)
    assert export_run_job_id("r1", T0) != export_run_job_id("r1", T0 + MIN)

"""Export runs: one run per idempotency key, updated by every report of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from db import export_runs
from db.scope import Claims, as_caller, as_service
from tests.factories import make_org

SLOT = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def service(org_id: UUID, role: str = "service") -> Claims:
    return Claims(sub="export-job", role=role, org_id=org_id)


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        return await make_org(conn)


def _report(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "integration_type": "xledger",
        "idempotency_key": "xledger:2026-11-01",
        "status": "RUNNING",
        "scheduled_for": SLOT,
        "started_at": SLOT + timedelta(minutes=1),
        "finished_at": None,
        "error_category": None,
        "error_message": None,
    }
    fields.update(overrides)
    return fields


async def _as(pool: asyncpg.Pool, org: UUID, **fields: Any) -> tuple[export_runs.ExportRun, bool]:
    async with as_caller(pool, service(org)) as conn:
        return await export_runs.report(conn, org_id=org, **_report(**fields))


async def test_the_first_report_of_a_key_creates_the_run(pool: asyncpg.Pool, org: UUID) -> None:
    run, created = await _as(pool, org)

    assert created
    assert run.org_id == org
    assert (run.integration_type, run.idempotency_key, run.status) == (
        "xledger",
        "xledger:2026-11-01",
        "RUNNING",
    )
    assert run.scheduled_for == SLOT
    assert run.created_at == run.updated_at


async def test_reporting_the_same_key_again_updates_that_one_run(
    pool: asyncpg.Pool, org: UUID
) -> None:
    first, _ = await _as(pool, org)

    second, created = await _as(
        pool,
        org,
        status="FAILED",
        scheduled_for=None,
        started_at=None,
        finished_at=SLOT + timedelta(minutes=3),
        error_category="AUTH",
        error_message="The API key was rejected.",
    )

    assert not created
    assert second.id == first.id
    assert second.status == "FAILED"
    assert (second.error_category, second.error_message) == ("AUTH", "The API key was rejected.")
    assert second.finished_at == SLOT + timedelta(minutes=3)
    # Left out of the later report: what the earlier one said still holds.
    assert second.scheduled_for == first.scheduled_for
    assert second.started_at == first.started_at
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    async with as_service(pool) as conn:
        assert await conn.fetchval("SELECT count(*) FROM export_runs") == 1


async def test_a_retried_run_that_succeeds_loses_its_old_error(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await _as(pool, org, status="FAILED", error_category="TIMEOUT", error_message="timed out")

    run, _ = await _as(pool, org, status="SUCCEEDED", finished_at=SLOT + timedelta(minutes=9))

    assert run.status == "SUCCEEDED"
    assert run.error_category is None and run.error_message is None


async def test_reusing_a_key_for_another_integration_type_is_a_key_conflict(
    pool: asyncpg.Pool, org: UUID
) -> None:
    original, _ = await _as(pool, org)

    with pytest.raises(export_runs.KeyConflict) as raised:
        await _as(pool, org, integration_type="dynamics365", status="FAILED")

    assert raised.value.idempotency_key == "xledger:2026-11-01"
    async with as_service(pool) as conn:
        page = await export_runs.list_for_org(conn, org, status=None, first=10, after=None)
    assert page.items == [original]


async def test_the_same_key_in_another_org_is_another_run(pool: asyncpg.Pool, org: UUID) -> None:
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")
    run_a, _ = await _as(pool, org)

    run_b, created = await _as(pool, org_b, integration_type="dynamics365")

    assert created
    assert run_b.id != run_a.id
    assert run_b.org_id == org_b


async def test_export_runs_page_newest_first(pool: asyncpg.Pool, org: UUID) -> None:
    made = [(await _as(pool, org, idempotency_key=f"xledger:day-{i}"))[0] for i in range(5)]

    seen: list[export_runs.ExportRun] = []
    has_next: list[bool] = []
    after = None
    async with as_caller(pool, service(org, "member")) as conn:
        while True:
            page = await export_runs.list_for_org(conn, org, status=None, first=2, after=after)
            seen += page.items
            has_next.append(page.has_next)
            if not page.has_next:
                break
            after = page.end_cursor

    assert [r.id for r in seen] == [r.id for r in made[::-1]]
    assert has_next == [True, True, False]


async def test_export_runs_list_filters_by_status(pool: asyncpg.Pool, org: UUID) -> None:
    failed, _ = await _as(pool, org, idempotency_key="a", status="FAILED")
    await _as(pool, org, idempotency_key="b", status="SUCCEEDED")

    async with as_caller(pool, service(org, "member")) as conn:
        page = await export_runs.list_for_org(conn, org, status="FAILED", first=10, after=None)

    assert [r.id for r in page.items] == [failed.id]


async def test_org_b_sees_nothing_of_org_a_export_runs(pool: asyncpg.Pool, org: UUID) -> None:
    await _as(pool, org)
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")

    async with as_caller(pool, service(org_b, "member")) as conn:
        page = await export_runs.list_for_org(conn, org, status=None, first=10, after=None)

    assert page.items == []
    assert not page.has_next


async def test_reporting_into_another_org_is_refused(pool: asyncpg.Pool, org: UUID) -> None:
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with as_caller(pool, service(org_b)) as conn:
            await export_runs.report(conn, org_id=org, **_report())


async def test_export_runs_list_refuses_a_bad_cursor(pool: asyncpg.Pool, org: UUID) -> None:
    with pytest.raises(ValueError, match="invalid cursor"):
        async with as_caller(pool, service(org)) as conn:
            await export_runs.list_for_org(conn, org, status=None, first=10, after="x")

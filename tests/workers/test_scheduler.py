"""The scheduler against real Postgres and Redis: exactly once per slot, passive, drift."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from arq import Retry
from arq.connections import ArqRedis
from arq.connections import create_pool as create_queue

from db import schedule
from db.pool import create_pool
from db.scope import as_service
from settings import Settings
from tests.factories import make_integration, make_org
from workers import scheduler
from workers.main import build_worker, redis_settings
from workers.scheduling import PASSIVE_COOLDOWN

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("http", "slack", "xledger")


def settings_for(dsn: str, redis_url: str, timeout: str = "3") -> Settings:
    return Settings.model_validate(
        {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "IHM_JWT_SECRET": "x" * 40,
            "IHM_VAULT_KEYS": "k1:" + base64.b64encode(b"k" * 32).decode(),
            "IHM_CHECK_TIMEOUT_SECONDS": timeout,
        }
    )


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[ArqRedis]:
    client = await create_queue(redis_settings(redis_url))
    yield client
    await client.aclose()


async def seed(pool: asyncpg.Pool, simulator_url: str, orgs: int) -> list[uuid.UUID]:
    """`orgs` orgs with HTTP integrations on the simulator (no credentials needed), due now."""
    ids = []
    async with as_service(pool) as conn:
        for _ in range(orgs):
            org = await make_org(conn)
            ids.append(org)
            await make_integration(
                conn, org, "http", config={"url": f"{simulator_url}/{org.hex}/http"}
            )
    return ids


async def queued_slots(queue: ArqRedis) -> Counter[tuple[str, str, str]]:
    counted: Counter[tuple[str, str, str]] = Counter()
    for job in await queue.queued_jobs():
        if job.function == "check_scheduled_orgs":
            (groups,) = job.args
            for org, slots in groups.items():
                for kind, slot in slots.items():
                    counted[(org, kind, slot)] += 1
    return counted


async def test_overlapping_ticks_of_two_workers_enqueue_each_due_check_once(
    dsn: str, pool: asyncpg.Pool, queue: ArqRedis, redis_url: str, simulator_url: str
) -> None:
    orgs = await seed(pool, simulator_url, 60)
    other_pool = await create_pool(dsn, max_size=5)
    other_queue = await create_queue(redis_settings(redis_url))
    try:
        first, second = await asyncio.gather(
            scheduler.schedule_due({"pool": pool, "redis": queue}),
            scheduler.schedule_due({"pool": other_pool, "redis": other_queue}),
        )
        again = await scheduler.schedule_due({"pool": pool, "redis": queue})
    finally:
        await other_pool.close()
        await other_queue.aclose()

    slots = await queued_slots(queue)
    assert first["enqueued_checks"] + second["enqueued_checks"] == len(orgs)
    assert again["enqueued_checks"] == 0
    assert sorted({org for org, _, _ in slots}) == sorted(str(o) for o in orgs)
    assert set(slots.values()) == {1}

    worker = build_worker(
        settings_for(dsn, redis_url), scheduler_tick=False, burst=True, handle_signals=False
    )
    await worker.async_run()
    await worker.close()

    per_integration = await pool.fetch(
        "SELECT org_id, count(*) AS n FROM health_check_results GROUP BY org_id"
    )
    assert len(per_integration) == len(orgs)
    assert {r["n"] for r in per_integration} == {1}
    assert await pool.fetchval("SELECT count(*) FROM check_slots") == len(orgs)


async def test_a_scheduled_job_that_runs_twice_writes_its_slot_once(
    dsn: str, pool: asyncpg.Pool, queue: ArqRedis, redis_url: str, simulator_url: str
) -> None:
    (org,) = await seed(pool, simulator_url, 1)
    slot = datetime.now(UTC).replace(microsecond=0)
    worker = build_worker(
        settings_for(dsn, redis_url), scheduler_tick=False, burst=True, handle_signals=False
    )
    ctx = worker.ctx
    ctx["redis"] = queue
    await worker.on_startup(ctx)  # type: ignore[misc]
    try:
        first = await scheduler.check_scheduled(ctx, str(org), {"http": slot.isoformat()})
        second = await scheduler.check_scheduled(ctx, str(org), {"http": slot.isoformat()})
    finally:
        await worker.on_shutdown(ctx)  # type: ignore[misc]
        await worker.close()

    assert [o["stored"] for o in first + second] == [True, False]
    assert (
        await pool.fetchval("SELECT count(*) FROM health_check_results WHERE org_id = $1", org) == 1
    )
    assert (
        await pool.fetchval("SELECT scheduled_for FROM health_check_results WHERE org_id = $1", org)
        == slot
    )


async def test_a_tick_that_fails_before_commit_reclaims_the_same_slot_without_a_second_job(
    pool: asyncpg.Pool, queue: ArqRedis, simulator_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(pool, simulator_url, 3)
    original = schedule.reschedule

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("lost the database just before commit")

    monkeypatch.setattr(schedule, "reschedule", crash)
    with pytest.raises(ConnectionResetError):
        await scheduler.schedule_due({"pool": pool, "redis": queue})
    monkeypatch.setattr(schedule, "reschedule", original)

    retried = await scheduler.schedule_due({"pool": pool, "redis": queue})

    slots = await queued_slots(queue)
    assert retried["enqueued_checks"] == 3
    assert len(slots) == 3
    assert set(slots.values()) == {1}
    assert len(await queue.queued_jobs()) == 1  # the three orgs share one job


async def test_repeated_rate_limiting_switches_to_passive_and_back_after_the_cool_down(
    pool: asyncpg.Pool, queue: ArqRedis, simulator_url: str
) -> None:
    (org,) = await seed(pool, simulator_url, 1)
    now = datetime.now(UTC)
    async with as_service(pool) as conn:
        for minutes in (45, 30, 15):
            await conn.execute(
                "INSERT INTO integration_health_status (org_id, integration_type, status, "
                "checked_at, error_category) VALUES ($1, 'http', 'degraded', $2, 'RATE_LIMITED') "
                "ON CONFLICT (org_id, integration_type) DO UPDATE SET checked_at = "
                "EXCLUDED.checked_at",
                org,
                now - timedelta(minutes=minutes),
            )

    ticked = await scheduler.schedule_due({"pool": pool, "redis": queue}, now=now)

    mode = await pool.fetchrow(
        "SELECT monitoring_mode, passive_until FROM integration_config WHERE org_id = $1", org
    )
    assert ticked["passive"] == 1
    assert ticked["enqueued_checks"] == 0
    assert mode["monitoring_mode"] == "PASSIVE"
    assert mode["passive_until"] == now + PASSIVE_COOLDOWN

    later = now + PASSIVE_COOLDOWN + timedelta(seconds=1)
    await pool.execute(
        "UPDATE integration_health_status SET error_category = NULL, status = 'healthy'"
    )
    back = await scheduler.schedule_due({"pool": pool, "redis": queue}, now=later)

    assert back["reactivated"] == 1
    assert back["enqueued_checks"] == 1
    assert (
        await pool.fetchval("SELECT monitoring_mode FROM integration_config WHERE org_id = $1", org)
        == "ACTIVE"
    )


async def test_an_admin_choice_of_passive_mode_is_kept(
    pool: asyncpg.Pool, queue: ArqRedis, simulator_url: str
) -> None:
    await seed(pool, simulator_url, 1)
    await pool.execute("UPDATE integration_config SET monitoring_mode = 'PASSIVE'")

    ticked = await scheduler.schedule_due(
        {"pool": pool, "redis": queue}, now=datetime.now(UTC) + timedelta(days=30)
    )

    assert ticked == {"enqueued_checks": 0, "jobs": 0, "passive": 0, "reactivated": 0}


async def test_a_check_starting_late_raises_scheduler_drift_and_an_on_time_one_resolves_it(
    dsn: str, pool: asyncpg.Pool, queue: ArqRedis, redis_url: str, simulator_url: str
) -> None:
    (org,) = await seed(pool, simulator_url, 1)
    worker = build_worker(
        settings_for(dsn, redis_url), scheduler_tick=False, burst=True, handle_signals=False
    )
    ctx = worker.ctx
    ctx["redis"] = queue
    await worker.on_startup(ctx)  # type: ignore[misc]
    try:
        late = datetime.now(UTC) - timedelta(minutes=10)
        await scheduler.check_scheduled(ctx, str(org), {"http": late.isoformat()})
        firing = await pool.fetch(
            "SELECT state, severity FROM health_check_alerts WHERE kind = 'SCHEDULER_DRIFT'"
        )
        await scheduler.check_scheduled(ctx, str(org), {"http": datetime.now(UTC).isoformat()})
    finally:
        await worker.on_shutdown(ctx)  # type: ignore[misc]
        await worker.close()

    assert [(r["state"], r["severity"]) for r in firing] == [("FIRING", "WARNING")]
    assert (
        await pool.fetchval("SELECT state FROM health_check_alerts WHERE kind = 'SCHEDULER_DRIFT'")
        == "RESOLVED"
    )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM health_check_results WHERE started_at - scheduled_for "
            "> interval '5 minutes'"
        )
        == 1
    )


def _worker_process(dsn: str, redis_url: str, timeout: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IHM_")}
    env.update(
        DATABASE_URL=dsn,
        REDIS_URL=redis_url,
        IHM_JWT_SECRET="x" * 40,
        IHM_VAULT_KEYS="k1:" + base64.b64encode(b"k" * 32).decode(),
        IHM_CHECK_TIMEOUT_SECONDS=timeout,
        IHM_ENV="production",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "ihm", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_for(pool: asyncpg.Pool, sql: str, *args: Any, seconds: float) -> Any:
    for _ in range(int(seconds * 10)):
        value = await pool.fetchval(sql, *args)
        if value:
            return value
        await asyncio.sleep(0.1)
    return await pool.fetchval(sql, *args)


async def test_a_worker_killed_mid_check_is_replaced_and_the_slot_written_once(
    dsn: str, pool: asyncpg.Pool, redis_url: str, simulator_url: str
) -> None:
    (org,) = await seed(pool, simulator_url, 1)
    async with httpx.AsyncClient(base_url=simulator_url) as sim:
        await sim.put(f"/_control/{org.hex}", json={"mode": "slow", "ms": 1500})
        first = _worker_process(dsn, redis_url, timeout="2")
        try:
            started = await _wait_for(
                pool,
                "SELECT next_check_at > now() FROM integration_config WHERE org_id = $1",
                org,
                seconds=20,
            )
            assert started, "the first worker never claimed the integration"
            calls = 0
            for _ in range(100):
                calls = (await sim.get(f"/_control/{org.hex}")).json()["requests"]["http"]
                if calls:
                    break
                await asyncio.sleep(0.05)
            assert calls == 1, "the first worker never started the check"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert await pool.fetchval("SELECT count(*) FROM health_check_results") == 0

        second = _worker_process(dsn, redis_url, timeout="2")
        try:
            written = await _wait_for(
                pool,
                "SELECT count(*) FROM health_check_results WHERE org_id = $1",
                org,
                seconds=70,
            )
        finally:
            second.terminate()
            second.wait(15)

    assert written == 1
    assert await pool.fetchval("SELECT count(*) FROM check_slots") == 1
    assert (
        await pool.fetchval("SELECT status FROM integration_health_status WHERE org_id = $1", org)
        == "healthy"
    )


async def test_a_worker_keeps_running_across_a_postgres_restart(
    dsn: str, redis_url: str, queue: ArqRedis, simulator_url: str, postgres_server: Any
) -> None:
    worker = build_worker(
        settings_for(dsn, redis_url), scheduler_tick=False, handle_signals=False, poll_delay=0.05
    )
    task = asyncio.create_task(worker.async_run())
    probe = await create_pool(dsn, max_size=2)
    try:
        await asyncio.sleep(0.5)
        postgres_server.server.stop()
        await asyncio.sleep(0.5)
        postgres_server.server.start()
        (org,) = await seed(probe, simulator_url, 1)

        for _ in range(3):  # the first attempt may meet a connection the restart broke
            await queue.enqueue_job("check_org", str(org), trigger="manual")
            if await _wait_for(
                probe,
                "SELECT count(*) FROM integration_health_status WHERE org_id = $1",
                org,
                seconds=5,
            ):
                break

        assert not task.done()
        assert (
            await probe.fetchval(
                "SELECT status FROM integration_health_status WHERE org_id = $1", org
            )
            == "healthy"
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()
        await probe.close()


@pytest.mark.parametrize(
    ("sizes", "per_job", "expected"),
    [
        ([], 24, []),
        ([6, 6, 6, 6], 24, [[6, 6, 6, 6]]),
        ([6, 6, 6, 6, 1], 24, [[6, 6, 6, 6], [1]]),
        ([1] * 5, 2, [[1, 1], [1, 1], [1]]),
        ([6, 30, 2], 24, [[6], [30], [2]]),  # an org larger than a job stays whole
    ],
)
def test_due_orgs_are_packed_into_jobs_without_splitting_an_org(
    sizes: list[int], per_job: int, expected: list[list[int]]
) -> None:
    slot = datetime(2026, 1, 1, tzinfo=UTC)
    per_org = {uuid.uuid4(): {f"t{n}": slot for n in range(size)} for size in sizes}

    groups = scheduler.pack(per_org, per_job)

    assert [[len(slots) for slots in group.values()] for group in groups] == expected
    assert [org for group in groups for org in group] == list(per_org)


async def test_a_failing_org_in_a_scheduled_batch_holds_back_only_itself(
    dsn: str, pool: asyncpg.Pool, queue: ArqRedis, redis_url: str, simulator_url: str
) -> None:
    good, bad = await seed(pool, simulator_url, 2)
    worker = build_worker(
        settings_for(dsn, redis_url), scheduler_tick=False, burst=True, handle_signals=False
    )
    ctx = worker.ctx
    ctx["redis"] = queue
    await worker.on_startup(ctx)  # type: ignore[misc]
    original = ctx["runner"].on_recorded

    async def failing_for_bad(conn: asyncpg.Connection, rows: Any, now: datetime) -> Any:
        if any(r.org_id == bad for r in rows):
            raise RuntimeError("alerting failed for one org")
        return await original(conn, rows, now)

    ctx["runner"] = dataclasses.replace(ctx["runner"], on_recorded=failing_for_bad)
    late = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    try:
        with pytest.raises(Retry):  # arq runs the job again; the good org is not rewritten
            await scheduler.check_scheduled_orgs(
                ctx, {str(good): {"http": late}, str(bad): {"http": late}}
            )
    finally:
        await worker.on_shutdown(ctx)  # type: ignore[misc]
        await worker.close()

    written = await pool.fetch("SELECT org_id FROM health_check_results")
    drift = await pool.fetch(
        "SELECT org_id, occurrences FROM health_check_alerts WHERE kind = 'SCHEDULER_DRIFT'"
    )
    assert [r["org_id"] for r in written] == [good]
    assert [(r["org_id"], r["occurrences"]) for r in drift] == [(good, 1)]

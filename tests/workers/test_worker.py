"""The arq worker end to end: real Redis queue, real Postgres, the simulator as provider."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from arq import create_pool
from arq.connections import ArqRedis
from arq.worker import Worker

from db.scope import as_service
from embedded import EmbeddedRedis
from settings import Settings
from tests.factories import make_integration, make_org
from tests.stopping import stop_worker
from workers.main import build_worker, redis_settings


def settings_for(dsn: str, redis_url: str) -> Settings:
    return Settings.model_validate(
        {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "IHM_JWT_SECRET": "x" * 40,
            "IHM_VAULT_KEYS": "k1:" + base64.b64encode(b"k" * 32).decode(),
            "IHM_CHECK_TIMEOUT_SECONDS": "2",
        }
    )


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(redis_url))
    yield pool
    await pool.aclose()


@pytest.fixture
async def org_checking_the_simulator(pool: asyncpg.Pool, simulator_url: str) -> uuid.UUID:
    key = uuid.uuid4().hex
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await make_integration(conn, org, "http", config={"url": f"{simulator_url}/{key}/http"})
    return org


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.async_run())
    try:
        yield task
    finally:
        await stop_worker(task, worker)


async def _status(pool: asyncpg.Pool, org: uuid.UUID) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT status FROM integration_health_status WHERE org_id = $1", org
    )
    return status


async def test_the_worker_runs_a_queued_org_check(
    dsn: str,
    redis_url: str,
    pool: asyncpg.Pool,
    queue: ArqRedis,
    org_checking_the_simulator: uuid.UUID,
) -> None:
    org = org_checking_the_simulator
    job = await queue.enqueue_job("check_org", str(org), trigger="manual")
    assert job is not None
    worker = build_worker(
        settings_for(dsn, redis_url), scheduler_tick=False, burst=True, handle_signals=False
    )

    await worker.async_run()
    await worker.close()

    (summary,) = await job.result(timeout=5)
    assert summary["status"] == "healthy"
    assert summary["health"]["connectionState"] == "CONNECTED"
    assert await _status(pool, org) == "healthy"


async def test_the_worker_keeps_running_across_a_redis_restart(
    dsn: str,
    redis_url: str,
    redis_server: EmbeddedRedis,
    pool: asyncpg.Pool,
    org_checking_the_simulator: uuid.UUID,
) -> None:
    org = org_checking_the_simulator
    worker = build_worker(
        settings_for(dsn, redis_url), scheduler_tick=False, handle_signals=False, poll_delay=0.05
    )
    async with running(worker) as task:
        await asyncio.sleep(0.5)

        redis_server.stop()
        await asyncio.sleep(1.0)
        redis_server.start()

        queue = await create_pool(redis_settings(redis_url))
        try:
            await queue.enqueue_job("check_org", str(org), trigger="manual")
        finally:
            await queue.aclose()
        for _ in range(200):
            if await _status(pool, org) is not None or task.done():
                break
            await asyncio.sleep(0.05)

        assert not task.done(), task.exception() if task.done() else None
        assert await _status(pool, org) == "healthy"


async def test_the_worker_shares_one_http_client_with_keep_alive(dsn: str, redis_url: str) -> None:
    worker = build_worker(
        settings_for(dsn, redis_url), scheduler_tick=False, burst=True, handle_signals=False
    )
    ctx = worker.ctx
    ctx["redis"] = None  # arq sets its pool there when it runs
    await worker.on_startup(ctx)  # type: ignore[misc]
    try:
        client = ctx["http"]
        assert isinstance(client, httpx.AsyncClient)
        assert client.timeout.read == 2
        assert ctx["runner"].checks.http is client
    finally:
        await worker.on_shutdown(ctx)  # type: ignore[misc]
        await worker.close()

"""What the worker wires in: the runner's hook end to end, and the arq function and crons."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import httpx
import pytest
from arq import create_pool
from redis.asyncio import Redis

from db import export_runs
from db.scope import as_service
from db.vault import Vault
from settings import Settings
from tests.factories import make_integration, make_org
from tests.workers.alerting.helpers import alerts_of, firing, sent, set_rule
from workers.alerting import jobs
from workers.checks.context import CheckContext
from workers.credential_source import VaultCredentialSource
from workers.events import alert_channel
from workers.main import build_worker, redis_settings
from workers.runner import Runner, run_health_checks


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        org_id = await make_org(conn)
        await make_integration(conn, org_id, "http", config={"url": "https://service.test/health"})
    await set_rule(pool, org_id, failure_threshold=1)
    return org_id


async def test_a_failing_check_run_by_the_runner_raises_an_alert_notifies_and_publishes_it(
    pool: asyncpg.Pool, redis: Redis, vault: Vault, org: UUID
) -> None:
    async def down(_: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="maintenance")

    subscription = redis.pubsub()
    await subscription.subscribe(alert_channel(org))
    await subscription.get_message(timeout=1)  # the subscribe confirmation
    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as client:
        checks = CheckContext(http=client, credentials=VaultCredentialSource(pool, vault))
        runner = Runner(pool=pool, checks=checks, redis=redis, on_recorded=jobs.on_recorded)

        await run_health_checks(runner, org, trigger="manual")

    [alert] = await alerts_of(pool, org)
    assert (alert.kind, alert.state) == ("UNREACHABLE", "FIRING")
    assert [n.title for n in await sent(pool, org)] == ["HTTP service is unreachable"]
    message = await subscription.get_message(ignore_subscribe_messages=True, timeout=2)
    assert message is not None
    assert json.loads(message["data"])["id"] == str(alert.id)
    await subscription.aclose()


async def test_export_run_reported_runs_as_an_arq_job_in_the_worker(
    dsn: str, redis_url: str, pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_service(pool) as conn:
        run, _ = await export_runs.report(
            conn,
            org_id=org,
            integration_type="http",
            idempotency_key="http:2026-11-01",
            status="FAILED",
            scheduled_for=None,
            started_at=None,
            finished_at=None,
            error_category="NETWORK",
            error_message=None,
        )
    queue = await create_pool(redis_settings(redis_url))
    try:
        job = await queue.enqueue_job(
            "export_run_reported",
            str(org),
            str(run.id),
            _job_id=jobs.export_run_job_id(run.id, run.updated_at),
        )
        assert job is not None
        settings = Settings.model_validate(
            {
                "DATABASE_URL": dsn,
                "REDIS_URL": redis_url,
                "IHM_JWT_SECRET": "x" * 40,
                "IHM_VAULT_KEYS": "k1:" + base64.b64encode(b"k" * 32).decode(),
            }
        )
        worker = build_worker(
            settings,
            scheduler_tick=False,
            burst=True,
            handle_signals=False,
            functions=jobs.FUNCTIONS,
            cron_jobs=[],
        )
        await worker.async_run()
        await worker.close()

        result = await job.result(timeout=5)
    finally:
        await queue.aclose()

    assert await firing(pool, org) == [("EXPORT_FAILED", "http:2026-11-01")]
    assert result == {"alerts": [str((await alerts_of(pool, org))[0].id)]}


def test_the_worker_gets_one_function_and_two_unique_crons() -> None:
    assert [f.name for f in jobs.FUNCTIONS] == ["export_run_reported"]
    assert {c.name: c.unique for c in jobs.CRON_JOBS} == {
        "scan_credential_expiry": True,
        "evaluate_provider_incidents": True,
    }


async def test_the_incident_cron_runs_with_a_worker_context(pool: asyncpg.Pool) -> None:
    result = await jobs.evaluate_provider_incidents({"pool": pool})

    assert result == {"opened": [], "resolved": []}

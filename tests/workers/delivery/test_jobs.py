"""The arq jobs: `test_channel` behind testNotificationChannel, and the dispatcher cron."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from arq import create_pool

from db.vault import Vault
from settings import Settings
from tests.stopping import stop_worker
from tests.workers.delivery.conftest import (
    Mailbox,
    Receiver,
    channel,
    enqueue_one,
    make_channel,
    outbox_rows,
)
from workers.delivery import jobs
from workers.delivery.policy import FAILING_AFTER
from workers.delivery.webhook import IDEMPOTENCY_HEADER
from workers.main import build_worker, redis_settings

SECRET = "whsec-jobs"


def settings_for(dsn: str, redis_url: str, smtp_url: str | None = None) -> Settings:
    values = {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "IHM_JWT_SECRET": "x" * 40,
        # The key of the `vault` fixture, which sealed the channels.
        "IHM_VAULT_KEYS": "k1:" + base64.b64encode(b"k" * 32).decode(),
        "IHM_SMTP_SENDER": "IHM <alerts@ihm.example.com>",
    }
    if smtp_url:
        values["IHM_SMTP_URL"] = smtp_url
    return Settings.model_validate(values)


@pytest.fixture
def ctx(pool: asyncpg.Pool, http: httpx.AsyncClient, dsn: str, redis_url: str) -> dict[str, Any]:
    """What workers.main puts in the worker's ctx."""
    return {"pool": pool, "http": http, "settings": settings_for(dsn, redis_url)}


async def test_test_channel_sends_a_real_signed_test_message_and_returns_true(
    pool: asyncpg.Pool, vault: Vault, org: UUID, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    # given: a channel that was failing
    url, endpoint = receiver.endpoint(secret=SECRET)
    hook = await make_channel(pool, vault, org, "WEBHOOK", url, secret=SECRET)
    await pool.execute(
        "UPDATE notification_channels SET consecutive_failures = 5, failing_since = now()"
        " WHERE id = $1",
        hook.id,
    )

    # when
    delivered = await jobs.test_channel(ctx, str(org), str(hook.id))

    # then
    assert delivered is True
    (request,) = endpoint.requests
    assert request.signature_ok is True
    sent = request.json()
    assert sent["type"] == "test"
    assert sent["title"] == "Test notification"
    assert request.headers[IDEMPOTENCY_HEADER.lower()].startswith(f"test:{hook.id}:")
    tested = await channel(pool, hook.id)
    assert (tested.consecutive_failures, tested.failing_since) == (0, None)
    assert await outbox_rows(pool, org) == []  # not through the outbox


async def test_a_test_message_that_fails_returns_false_and_counts_against_the_channel(
    pool: asyncpg.Pool, vault: Vault, org: UUID, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    # given
    url, _ = receiver.endpoint(script=[401] * FAILING_AFTER)
    hook = await make_channel(pool, vault, org, "WEBHOOK", url)

    # when
    results = [await jobs.test_channel(ctx, str(org), str(hook.id)) for _ in range(FAILING_AFTER)]

    # then
    assert results == [False] * FAILING_AFTER
    assert (await channel(pool, hook.id)).consecutive_failures == FAILING_AFTER
    notices = await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE org_id = $1 AND title LIKE '%keeps failing%'",
        org,
    )
    assert notices == 1


async def test_test_channel_sends_email_through_the_configured_smtp_server(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    smtp: Mailbox,
    ctx: dict[str, Any],
    dsn: str,
    redis_url: str,
) -> None:
    # given
    ctx["settings"] = settings_for(dsn, redis_url, f"smtp://{smtp.host}:{smtp.port}")
    mail = await make_channel(pool, vault, org, "EMAIL", "ops@example.com")

    # when
    delivered = await jobs.test_channel(ctx, str(org), str(mail.id))

    # then
    assert delivered is True
    (email,) = smtp.messages()
    assert email["Subject"] == "[INFO] Test notification"
    assert email["From"] == "IHM <alerts@ihm.example.com>"


async def test_an_in_app_channel_test_shows_a_test_notification(
    pool: asyncpg.Pool, vault: Vault, org: UUID, ctx: dict[str, Any]
) -> None:
    # given
    in_app = await make_channel(pool, vault, org, "IN_APP")

    # when
    delivered = await jobs.test_channel(ctx, str(org), str(in_app.id))

    # then
    assert delivered is True
    titles = await pool.fetch("SELECT title FROM notifications WHERE org_id = $1", org)
    assert [r["title"] for r in titles] == ["Test notification"]


async def test_a_channel_of_another_org_or_none_at_all_is_not_tested(
    pool: asyncpg.Pool, vault: Vault, org: UUID, receiver: Receiver, ctx: dict[str, Any]
) -> None:
    # given
    url, endpoint = receiver.endpoint()
    hook = await make_channel(pool, vault, org, "WEBHOOK", url)

    # when
    other_org = await jobs.test_channel(ctx, str(uuid4()), str(hook.id))
    missing = await jobs.test_channel(ctx, str(org), str(uuid4()))

    # then
    assert (other_org, missing) == (False, False)
    assert endpoint.requests == []


def test_the_jobs_to_wire_are_named_as_the_resolver_and_the_cron_expect() -> None:
    names = {f.name for f in jobs.FUNCTIONS}
    dispatch, prune = jobs.CRON_JOBS

    assert {"test_channel", "dispatch_outbox"} <= names
    assert dispatch.unique and prune.unique
    assert dispatch.second == set(range(0, 60, 5))
    assert dispatch.timeout_s is not None and dispatch.timeout_s < 120  # under the lease


@contextlib.asynccontextmanager
async def _running(worker: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        await stop_worker(task, worker)


async def test_a_worker_with_the_jobs_wired_runs_the_resolvers_test_and_the_dispatcher(
    pool: asyncpg.Pool, vault: Vault, org: UUID, receiver: Receiver, dsn: str, redis_url: str
) -> None:
    # given: a worker built like workers.main's, with these jobs; a test requested the way
    # resolvers.recovery.test_channel does; and a message waiting in the outbox
    url, endpoint = receiver.endpoint(secret=SECRET)
    hook = await make_channel(pool, vault, org, "WEBHOOK", url, secret=SECRET)
    key = await enqueue_one(pool, org)
    dispatch_now = dataclasses.replace(jobs.CRON_JOBS[0], run_at_startup=True)
    worker = build_worker(
        settings_for(dsn, redis_url),
        functions=jobs.FUNCTIONS,
        cron_jobs=[dispatch_now],
        handle_signals=False,
        poll_delay=0.05,
    )
    queue = await create_pool(redis_settings(redis_url))
    try:
        job = await queue.enqueue_job("test_channel", str(org), str(hook.id))
        assert job is not None

        # when
        async with _running(worker):
            delivered = await job.result(timeout=15, poll_delay=0.05)
            for _ in range(200):
                if {r.state for r in await outbox_rows(pool, org)} == {"DELIVERED"}:
                    break
                await asyncio.sleep(0.05)
    finally:
        await queue.aclose()

    # then
    assert delivered is True
    keys = sorted(r.headers[IDEMPOTENCY_HEADER.lower()] for r in endpoint.requests)
    assert len(keys) == 2
    assert f"{key}:{hook.id}" in keys
    assert all(r.signature_ok for r in endpoint.requests)
    assert {r.state for r in await outbox_rows(pool, org)} == {"DELIVERED"}

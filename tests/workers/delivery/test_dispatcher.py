"""The dispatcher's guarantees: leases, at-least-once, one delivery across workers."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg

from db import outbox
from db.scope import as_service
from db.vault import Vault
from tests.workers.delivery.conftest import (
    Clock,
    Receiver,
    channel,
    enqueue_one,
    make_channel,
    outbox_rows,
)
from workers.delivery.outbox import LEASE, Deliverer, dispatch_due
from workers.delivery.webhook import IDEMPOTENCY_HEADER


async def test_a_worker_killed_between_claiming_and_sending_lets_another_deliver_after_the_lease(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given: a worker claimed the message, committed, and died before sending
    url, endpoint = receiver.endpoint()
    hook = await make_channel(pool, vault, org, "WEBHOOK", url)
    key = await enqueue_one(pool, org, now=clock.at(0))
    async with as_service(pool) as conn:
        (claimed,) = await outbox.claim_due(conn, now=clock.at(0), limit=10, lease=LEASE)

    # when: other workers run while the lease holds, then after it ran out
    during_lease = await dispatch_due(deliverer, now=clock.at(LEASE.total_seconds() - 1))
    after_lease = await dispatch_due(deliverer, now=clock.at(LEASE.total_seconds()))

    # then: delivered once, by the second attempt
    assert claimed.attempt == 1
    assert during_lease.claimed == 0
    assert after_lease.delivered == 1
    assert len(endpoint.requests) == 1
    assert endpoint.requests[0].headers[IDEMPOTENCY_HEADER.lower()] == f"{key}:{hook.id}"
    (row,) = await outbox_rows(pool, org)
    assert row.state == "DELIVERED"
    assert row.attempts == 2


async def test_the_dead_workers_late_outcome_cannot_overwrite_the_redelivery(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given: attempt 1 lost its lease and attempt 2 delivered
    url, _ = receiver.endpoint()
    await make_channel(pool, vault, org, "WEBHOOK", url)
    await enqueue_one(pool, org, now=clock.at(0))
    async with as_service(pool) as conn:
        (stale,) = await outbox.claim_due(conn, now=clock.at(0), limit=10, lease=LEASE)
    await dispatch_due(deliverer, now=clock.at(LEASE.total_seconds()))

    # when: the first worker comes back and reports a failure
    async with as_service(pool) as conn:
        written = await outbox.finish(
            conn, stale.id, stale.attempt, outcome=outbox.FAILED, at=clock.at(200), error="late"
        )

    # then
    assert written is False
    (row,) = await outbox_rows(pool, org)
    assert (row.state, row.last_error) == ("DELIVERED", None)


async def test_concurrent_dispatchers_deliver_each_message_once(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given: 30 messages for one webhook
    url, endpoint = receiver.endpoint()
    await make_channel(pool, vault, org, "WEBHOOK", url)
    for _ in range(30):
        await enqueue_one(pool, org, now=clock.at(0))

    # when: three workers dispatch at once, in small batches
    runs = await asyncio.gather(
        *(dispatch_due(deliverer, now=clock.at(0), batch_size=4) for _ in range(3))
    )

    # then
    assert sum(r.delivered for r in runs) == 30
    assert len(endpoint.requests) == 30
    assert len(endpoint.processed) == 30
    assert {r.state for r in await outbox_rows(pool, org)} == {"DELIVERED"}


async def test_a_channel_disabled_after_enqueueing_gets_nothing_and_keeps_its_health(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given
    url, endpoint = receiver.endpoint()
    hook = await make_channel(pool, vault, org, "WEBHOOK", url)
    await enqueue_one(pool, org, now=clock.at(0))
    await pool.execute("UPDATE notification_channels SET enabled = false WHERE id = $1", hook.id)

    # when
    stats = await dispatch_due(deliverer, now=clock.at(0))

    # then
    assert stats.failed == 1
    assert endpoint.requests == []
    (row,) = await outbox_rows(pool, org)
    assert (row.state, row.last_error) == ("FAILED", "the channel was disabled before delivery")
    assert (await channel(pool, hook.id)).consecutive_failures == 0


async def test_a_channel_whose_vault_key_is_gone_is_retried_with_a_safe_error(
    pool: asyncpg.Pool,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given: a channel sealed with a key this worker does not hold
    url, endpoint = receiver.endpoint(token="T0KEN-from-old-key")
    await make_channel(pool, Vault([("old", b"o" * 32)]), org, "WEBHOOK", url, secret="s3cr3t-old")
    await enqueue_one(pool, org, now=clock.at(0))

    # when
    stats = await dispatch_due(deliverer, now=clock.at(0))

    # then
    assert stats.retried == 1
    assert endpoint.requests == []
    (row,) = await outbox_rows(pool, org)
    assert row.last_error is not None
    assert "'old'" in row.last_error and "IHM_VAULT_KEYS" in row.last_error
    assert "T0KEN" not in row.last_error and "s3cr3t" not in row.last_error


async def test_nothing_due_means_nothing_claimed(deliverer: Deliverer, clock: Clock) -> None:
    stats = await dispatch_due(deliverer, now=clock.at(0))

    assert (stats.claimed, stats.delivered) == (0, 0)

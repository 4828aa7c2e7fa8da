"""A channel that keeps failing is marked failing and its org told in-app, once per streak."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db.vault import Vault
from tests.workers.delivery.conftest import (
    Clock,
    Receiver,
    channel,
    enqueue_one,
    make_channel,
    outbox_rows,
)
from workers.delivery.outbox import Deliverer, dispatch_due, is_failing
from workers.delivery.policy import FAILING_AFTER


async def _notices(pool: asyncpg.Pool, org: UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT title, body FROM notifications WHERE org_id = $1 AND title LIKE '%keeps failing%'"
        " ORDER BY created_at",
        org,
    )
    return rows


async def test_a_channel_failing_k_times_in_a_row_is_marked_failing_and_admins_are_told_once(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given: a webhook that refuses everything, and more messages than the threshold
    url, _ = receiver.endpoint(script=[410] * 10, token="T0KEN-abcdef123456")
    hook = await make_channel(pool, vault, org, "WEBHOOK", url, secret="whsec-LEAK")
    for _ in range(FAILING_AFTER + 2):
        await enqueue_one(pool, org, now=clock.at(0))

    # when
    stats = await dispatch_due(deliverer, now=clock.at(0))

    # then
    assert stats.failed == FAILING_AFTER + 2
    failing = await channel(pool, hook.id)
    assert is_failing(failing)
    assert failing.consecutive_failures == FAILING_AFTER + 2
    assert failing.failing_since is not None
    (notice,) = await _notices(pool, org)
    assert notice["title"] == (
        f"The webhook channel {hook.target_masked} keeps failing: check it in Settings"
    )
    assert "the webhook refused the message (410)" in notice["body"]
    assert "still appears here in the app" in notice["body"]
    assert "T0KEN" not in notice["title"] + notice["body"]
    # Nothing is lost: every message is in the app as well.
    in_app = await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE org_id = $1 AND title = 'Slack is unreachable'",
        org,
    )
    assert in_app == FAILING_AFTER + 2


async def test_a_success_clears_failing_and_a_new_streak_tells_the_admins_again(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given: a failing channel
    url, endpoint = receiver.endpoint(script=[400] * FAILING_AFTER)
    hook = await make_channel(pool, vault, org, "WEBHOOK", url)
    for _ in range(FAILING_AFTER):
        await enqueue_one(pool, org, now=clock.at(0))
    await dispatch_due(deliverer, now=clock.at(0))
    assert is_failing(await channel(pool, hook.id))

    # when: the receiver recovers
    await enqueue_one(pool, org, now=clock.at(10))
    await dispatch_due(deliverer, now=clock.at(10))

    # then
    recovered = await channel(pool, hook.id)
    assert (recovered.consecutive_failures, recovered.failing_since) == (0, None)
    assert not is_failing(recovered)
    assert len(await _notices(pool, org)) == 1

    # and when: it breaks again, the admins hear of the new streak
    endpoint.script.extend([400] * FAILING_AFTER)
    for _ in range(FAILING_AFTER):
        await enqueue_one(pool, org, now=clock.at(20))
    await dispatch_due(deliverer, now=clock.at(20))
    assert len(await _notices(pool, org)) == 2


async def test_failures_below_the_threshold_tell_nobody(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given
    url, _ = receiver.endpoint(script=[500] * (FAILING_AFTER - 1))
    hook = await make_channel(pool, vault, org, "WEBHOOK", url)
    await enqueue_one(pool, org, now=clock.at(0))

    # when: it fails FAILING_AFTER - 1 times, then succeeds
    for n in range(FAILING_AFTER):
        await dispatch_due(deliverer, now=clock.at(7200 * n))

    # then
    assert await _notices(pool, org) == []
    assert (await channel(pool, hook.id)).consecutive_failures == 0
    (row,) = await outbox_rows(pool, org)
    assert row.state == "DELIVERED"

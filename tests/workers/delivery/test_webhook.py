"""WEBHOOK delivery to a real local receiver that verifies the signature."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import httpx
import pytest

from db.vault import Vault
from tests.workers.delivery.conftest import (
    SLOW,
    Clock,
    Receiver,
    enqueue_one,
    make_channel,
    outbox_rows,
)
from workers.delivery.messages import Message
from workers.delivery.outbox import Deliverer, dispatch_due
from workers.delivery.policy import MAX_ATTEMPTS, Outcome
from workers.delivery.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    encode,
    headers_for,
    send_webhook,
    sign,
    verify_signature,
)

SECRET = "whsec-test-secret"
BODY = b'{"title":"x"}'
NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature", "expected"),
    [
        (SECRET, str(NOW), BODY, sign(SECRET, str(NOW), BODY), True),
        (SECRET, str(NOW - 299), BODY, sign(SECRET, str(NOW - 299), BODY), True),
        ("other-secret", str(NOW), BODY, sign(SECRET, str(NOW), BODY), False),
        (SECRET, str(NOW), b'{"title":"y"}', sign(SECRET, str(NOW), BODY), False),
        (SECRET, str(NOW + 1), BODY, sign(SECRET, str(NOW), BODY), False),
        (SECRET, str(NOW - 301), BODY, sign(SECRET, str(NOW - 301), BODY), False),
        (SECRET, "yesterday", BODY, sign(SECRET, "yesterday", BODY), False),
        (SECRET, str(NOW), BODY, sign(SECRET, str(NOW), BODY).removeprefix("sha256="), False),
        (SECRET, str(NOW), BODY, "", False),
    ],
    ids=[
        "valid",
        "valid-near-tolerance",
        "wrong-secret",
        "tampered-body",
        "other-timestamp",
        "stale",
        "non-numeric-timestamp",
        "no-prefix",
        "missing",
    ],
)
def test_verify_signature_accepts_only_a_fresh_signature_of_this_body(
    secret: str, timestamp: str, body: bytes, signature: str, expected: bool
) -> None:
    assert verify_signature(secret, timestamp, body, signature, now=NOW) is expected


def test_the_headers_carry_timestamp_signature_and_idempotency_key() -> None:
    # given
    message = Message({"idempotencyKey": "a:b", "title": "t", "severity": "INFO"})
    body = encode(message)

    # when
    headers = headers_for(message, body, SECRET, datetime.fromtimestamp(NOW, UTC))

    # then
    assert headers[TIMESTAMP_HEADER] == str(NOW)
    assert headers[IDEMPOTENCY_HEADER] == "a:b"
    assert headers["Content-Type"] == "application/json"
    assert verify_signature(SECRET, str(NOW), body, headers[SIGNATURE_HEADER], now=NOW)
    assert SIGNATURE_HEADER not in headers_for(message, body, None, datetime.now(UTC))


async def test_a_receiver_that_fails_twice_then_succeeds_gets_the_message_once_by_its_key(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given: a receiver answering 500, 500, then 200
    url, endpoint = receiver.endpoint(secret=SECRET, script=[500, 500])
    hook = await make_channel(pool, vault, org, "WEBHOOK", url, secret=SECRET)
    key = await enqueue_one(pool, org, now=clock.at(0))

    # when: the dispatcher runs at once, too early for the retry, then after each backoff
    first = await dispatch_due(deliverer, now=clock.at(0))
    too_early = await dispatch_due(deliverer, now=clock.at(29))
    (after_first,) = await outbox_rows(pool, org)
    second = await dispatch_due(deliverer, now=clock.at(30))
    (after_second,) = await outbox_rows(pool, org)
    too_early_again = await dispatch_due(deliverer, now=clock.at(89))
    third = await dispatch_due(deliverer, now=clock.at(90))

    # then: three signed requests, one message
    assert (first.retried, too_early.claimed, second.retried) == (1, 0, 1)
    assert (too_early_again.claimed, third.delivered) == (0, 1)
    assert after_first.not_before == clock.at(30)  # 30 s after the first attempt
    assert after_second.not_before == clock.at(90)  # then 60 s
    assert after_second.last_error == "the webhook answered 500"
    assert [r.status for r in endpoint.requests] == [500, 500, 200]
    assert all(r.signature_ok for r in endpoint.requests)
    keys = {r.headers[IDEMPOTENCY_HEADER.lower()] for r in endpoint.requests}
    assert keys == {f"{key}:{hook.id}"}
    assert list(endpoint.processed) == [f"{key}:{hook.id}"]
    payload = endpoint.processed[f"{key}:{hook.id}"]
    assert payload["title"] == "Slack is unreachable"
    assert payload["severity"] == "CRITICAL"
    assert payload["orgId"] == str(org)
    (row,) = await outbox_rows(pool, org)
    assert row.state == "DELIVERED"
    assert row.attempts == 3
    assert row.delivered_at == clock.at(90)
    assert row.last_error is None
    assert [e["outcome"] for e in row.delivery_log] == ["RETRY", "RETRY", "DELIVERED"]
    assert row.delivery_log[0]["error"] == "the webhook answered 500"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, "the webhook refused the message (404)"),
        (410, "the webhook refused the message (410)"),
        (301, "the webhook answered with a redirect (301): use the final URL"),
    ],
)
async def test_a_4xx_or_redirect_answer_fails_the_message_after_one_attempt(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
    status: int,
    error: str,
) -> None:
    # given
    url, endpoint = receiver.endpoint(script=[status])
    await make_channel(pool, vault, org, "WEBHOOK", url)
    await enqueue_one(pool, org, now=clock.at(0))

    # when
    stats = await dispatch_due(deliverer, now=clock.at(0))
    later = await dispatch_due(deliverer, now=clock.at(86_400))

    # then
    assert (stats.failed, later.claimed) == (1, 0)
    assert len(endpoint.requests) == 1
    (row,) = await outbox_rows(pool, org)
    assert row.state == "FAILED"
    assert row.attempts == 1
    assert row.last_error == error


async def test_a_webhook_that_does_not_answer_in_time_is_retried(
    http: httpx.AsyncClient, receiver: Receiver
) -> None:
    # given
    url, _ = receiver.endpoint(script=[SLOW])
    message = Message({"idempotencyKey": "k", "title": "t", "severity": "INFO"})

    # when
    outcome = await send_webhook(http, message, url=url, secret=None, timeout_seconds=0.3)

    # then
    assert outcome == Outcome.retry("the webhook did not answer within 0.3 s")


@pytest.mark.parametrize("status", [408, 429, 502])
async def test_timeouts_rate_limits_and_5xx_are_retried(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
    status: int,
) -> None:
    # given
    url, endpoint = receiver.endpoint(script=[status])
    await make_channel(pool, vault, org, "WEBHOOK", url)
    await enqueue_one(pool, org, now=clock.at(0))

    # when
    first = await dispatch_due(deliverer, now=clock.at(0))
    second = await dispatch_due(deliverer, now=clock.at(30))

    # then
    assert (first.retried, second.delivered) == (1, 1)
    assert [r.status for r in endpoint.requests] == [status, 200]


async def test_a_retry_after_longer_than_the_backoff_is_honoured(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given: a rate-limited receiver asking for two minutes
    url, _ = receiver.endpoint(script=[429], retry_after="120")
    await make_channel(pool, vault, org, "WEBHOOK", url)
    await enqueue_one(pool, org, now=clock.at(0))

    # when
    await dispatch_due(deliverer, now=clock.at(0))

    # then
    (row,) = await outbox_rows(pool, org)
    assert row.not_before == clock.at(120)
    assert row.last_error == "the webhook answered 429"


async def test_a_channel_without_a_secret_sends_unsigned_json(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given
    url, endpoint = receiver.endpoint()
    await make_channel(pool, vault, org, "WEBHOOK", url)
    await enqueue_one(pool, org, now=clock.at(0))

    # when
    stats = await dispatch_due(deliverer, now=clock.at(0))

    # then
    assert stats.delivered == 1
    (request,) = endpoint.requests
    assert SIGNATURE_HEADER.lower() not in request.headers
    assert request.headers["content-type"] == "application/json"
    assert abs(int(request.headers[TIMESTAMP_HEADER.lower()]) - datetime.now(UTC).timestamp()) < 60
    assert json.loads(request.body)["type"] == "alert"


async def test_a_message_failing_every_attempt_is_failed_after_the_last_one(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given: a receiver that is always down
    url, endpoint = receiver.endpoint(script=[503] * 50)
    await make_channel(pool, vault, org, "WEBHOOK", url)
    await enqueue_one(pool, org, now=clock.at(0))

    # when: the dispatcher runs every two hours, well past each backoff
    steps = [await dispatch_due(deliverer, now=clock.at(7200 * n)) for n in range(MAX_ATTEMPTS + 2)]

    # then
    assert [s.retried for s in steps[: MAX_ATTEMPTS - 1]] == [1] * (MAX_ATTEMPTS - 1)
    assert steps[MAX_ATTEMPTS - 1].failed == 1
    assert [s.claimed for s in steps[MAX_ATTEMPTS:]] == [0, 0]
    assert len(endpoint.requests) == MAX_ATTEMPTS
    (row,) = await outbox_rows(pool, org)
    assert row.state == "FAILED"
    assert row.attempts == MAX_ATTEMPTS
    assert row.last_error == "the webhook answered 503"
    assert len(row.delivery_log) == MAX_ATTEMPTS

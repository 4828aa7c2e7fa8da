"""No channel secret, URL token or SMTP password reaches last_error, the delivery log,
notifications, the payload or any log line, whatever goes wrong."""

from __future__ import annotations

import dataclasses
import logging
from uuid import UUID

import asyncpg
import pytest
import structlog

from db.vault import Vault
from embedded import free_port
from tests.workers.delivery.conftest import (
    Clock,
    Receiver,
    enqueue_one,
    make_channel,
    start_smtp,
)
from workers.delivery.outbox import Deliverer, dispatch_due, send_test_message
from workers.delivery.policy import FAILING_AFTER

# Apprise's plugins import the deprecated `imghdr` on first use: see test_apprise.py.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

SECRETS = {
    "webhook signing secret": "whsec-LEAK-signing-secret",
    "webhook path token": "PATHxLEAKxtoken123456",
    "webhook query token": "QUERYxLEAKxvalue",
    "apprise token": "APPRISExLEAKxtoken9876",
    "smtp password": "SMTP-LEAK-password",
}


async def test_failing_deliveries_of_every_kind_leak_no_secret(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: channels of every kind, each failing in its own way
    refusing, _ = receiver.endpoint(script=[500] + [410] * 20, token=SECRETS["webhook path token"])
    await make_channel(
        pool, vault, org, "WEBHOOK", refusing, secret=SECRETS["webhook signing secret"]
    )
    closed = f"http://127.0.0.1:{free_port()}/hook?token={SECRETS['webhook query token']}"
    await make_channel(pool, vault, org, "WEBHOOK", closed)
    apprise_down, _ = receiver.endpoint(script=[500] * 20, token=SECRETS["apprise token"])
    await make_channel(
        pool, vault, org, "APPRISE", "json://" + apprise_down.removeprefix("http://")
    )
    await make_channel(pool, vault, org, "APPRISE", f"bogus://{SECRETS['apprise token']}/x")
    mail = await make_channel(pool, vault, org, "EMAIL", "ops@example.com")
    smtp = await start_smtp(credentials=("monitor", "the right one"))
    smtp_url = f"smtp://monitor:{SECRETS['smtp password']}@127.0.0.1:{smtp.mailbox.port}"
    deliverer = dataclasses.replace(deliverer, smtp_url=smtp_url)
    caplog.set_level(logging.DEBUG)

    # when: enough messages and rounds to retry, fail, mark channels failing and test them
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(FAILING_AFTER):
                await enqueue_one(pool, org, now=clock.at(0))
            stats = [await dispatch_due(deliverer, now=clock.at(7200 * n)) for n in range(3)]
            tested = await send_test_message(deliverer, org, mail.id)
    finally:
        smtp.server.close()
        await smtp.server.wait_closed()

    # then
    assert sum(s.claimed for s in stats) > 10
    assert tested is False
    stored = await pool.fetch(
        "SELECT payload::text, last_error, delivery_log::text FROM notification_outbox"
        " WHERE org_id = $1",
        org,
    )
    errors = [r["last_error"] for r in stored]
    assert all(errors), errors  # every channel failed, each with a reason
    notices = await pool.fetch("SELECT title, body FROM notifications WHERE org_id = $1", org)
    assert any("keeps failing" in n["title"] for n in notices)
    masked = await pool.fetch("SELECT target_masked FROM notification_channels")
    # The fake SMTP server's own log is not ours (and it masks AUTH lines anyway).
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    haystack = "\n".join(
        [
            "\n".join(logging.Formatter("%(name)s %(message)s").format(r) for r in ours),
            repr(logs),
            *(repr(dict(r)) for r in stored),
            *(repr(dict(n)) for n in notices),
            *(r["target_masked"] for r in masked),
            repr(stats),
        ]
    )
    assert "HTTP Request: POST" in haystack  # httpx's lines are there, masked
    for name, value in SECRETS.items():
        assert value not in haystack, f"the {name} leaked"

"""APPRISE delivery: Apprise's json:// plugin posting to the local receiver."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from db.vault import Vault
from tests.workers.delivery.conftest import (
    Clock,
    Receiver,
    enqueue_one,
    make_channel,
    outbox_rows,
)
from workers.delivery.outbox import Deliverer, dispatch_due

# Apprise 2.2.0 loads its plugins on first use, and one of them imports the standard
# library's `imghdr` (deprecated since 3.11; a shim for PGPy, unused by Apprise). Not ours
# to fix, and outside tests Python shows library DeprecationWarnings to nobody.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


def _apprise_url(http_url: str) -> str:
    return "json://" + http_url.removeprefix("http://")


async def test_an_apprise_url_gets_the_title_and_the_body_with_the_message_key(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given
    url, endpoint = receiver.endpoint(token="ntfyTOKEN123")
    push = await make_channel(pool, vault, org, "APPRISE", _apprise_url(url))
    key = await enqueue_one(pool, org, now=clock.at(0), severity="WARNING")

    # when
    stats = await dispatch_due(deliverer, now=clock.at(0))

    # then
    assert stats.delivered == 1
    (request,) = endpoint.requests
    sent = request.json()
    assert sent["title"] == "[WARNING] Slack is unreachable"
    assert sent["message"].startswith("The connection was refused.")
    assert f"Message key: {key}:{push.id}" in sent["message"]
    assert sent["type"] == "warning"
    (row,) = await outbox_rows(pool, org)
    assert row.state == "DELIVERED"


async def test_a_failing_apprise_service_is_retried_and_only_its_scheme_is_named(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    receiver: Receiver,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given
    url, endpoint = receiver.endpoint(script=[500], token="ntfyTOKEN123")
    await make_channel(pool, vault, org, "APPRISE", _apprise_url(url))
    await enqueue_one(pool, org, now=clock.at(0))

    # when
    first = await dispatch_due(deliverer, now=clock.at(0))
    second = await dispatch_due(deliverer, now=clock.at(30))

    # then
    assert (first.retried, second.delivered) == (1, 1)
    assert len(endpoint.requests) == 2
    (row,) = await outbox_rows(pool, org)
    assert (
        row.delivery_log[0]["error"] == "the json:// service did not accept the message (failure)"
    )


async def test_an_apprise_url_apprise_cannot_parse_fails_for_good(
    pool: asyncpg.Pool, vault: Vault, org: UUID, deliverer: Deliverer, clock: Clock
) -> None:
    # given
    await make_channel(pool, vault, org, "APPRISE", "nosuchservice://T0KEN-abcdef/chat")
    await enqueue_one(pool, org, now=clock.at(0))

    # when
    stats = await dispatch_due(deliverer, now=clock.at(0))

    # then
    assert stats.failed == 1
    (row,) = await outbox_rows(pool, org)
    assert row.last_error == "Apprise does not recognise this URL: check its format"

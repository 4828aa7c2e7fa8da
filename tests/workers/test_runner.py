"""The runner against real Postgres and Redis; providers faked at the HTTP boundary."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
import structlog
from redis.asyncio import Redis

from db import credentials, integrations
from db.scope import as_service
from db.vault import Vault
from tests.factories import make_integration, make_org
from workers import events
from workers.checks.context import CheckContext
from workers.credential_source import VaultCredentialSource, for_integrations
from workers.runner import OrgRun, Runner, run_checks, run_health_checks

SLACK_TOKEN = "xoxb-super-secret-token-value"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class FakeProviders:
    """Routes requests by host to per-test handlers and counts them."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.calls: dict[str, int] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.calls[host] = self.calls.get(host, 0) + 1
        return await self.handlers[host](request)


async def ok_http(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="ok")


async def ok_slack(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True}, headers={"X-OAuth-Scopes": "chat:write"})


@pytest.fixture
def vault() -> Vault:
    return Vault([("k1", b"k" * 32)])


@pytest.fixture
def providers() -> FakeProviders:
    fake = FakeProviders()
    fake.handlers = {"service.test": ok_http, "slack.test": ok_slack}
    return fake


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_runner(
    pool: asyncpg.Pool, vault: Vault, providers: FakeProviders, redis: Redis
) -> AsyncIterator[Callable[..., Runner]]:
    clients: list[httpx.AsyncClient] = []

    def build(timeout: float = 2.0) -> Runner:
        client = httpx.AsyncClient(transport=httpx.MockTransport(providers), timeout=timeout)
        clients.append(client)
        checks = CheckContext(http=client, credentials=VaultCredentialSource(pool, vault))
        return Runner(pool=pool, checks=checks, redis=redis, timeout_seconds=timeout)

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
async def org(pool: asyncpg.Pool, vault: Vault) -> UUID:
    """An org with an HTTP service and Slack (with a stored bot token)."""
    async with as_service(pool) as conn:
        org_id = await make_org(conn)
        await make_integration(conn, org_id, "http", config={"url": "https://service.test/health"})
        slack = await make_integration(
            conn, org_id, "slack", config={"baseUrl": "https://slack.test/api"}
        )
        await credentials.store(
            conn, vault, org_id=org_id, integration_id=slack.id, payload={"botToken": SLACK_TOKEN}
        )
    return org_id


async def test_checks_run_concurrently(
    make_runner: Callable[..., Runner], providers: FakeProviders, org: UUID
) -> None:
    # Each provider answers only once both are being asked at the same time:
    # run one after the other, both would time out.
    waiting = 0
    both_asked = asyncio.Event()

    def meeting(answer: Handler) -> Handler:
        async def handler(request: httpx.Request) -> httpx.Response:
            nonlocal waiting
            waiting += 1
            if waiting == 2:
                both_asked.set()
            await both_asked.wait()
            return await answer(request)

        return handler

    providers.handlers = {"service.test": meeting(ok_http), "slack.test": meeting(ok_slack)}

    outcomes = await run_health_checks(make_runner(timeout=2.0), org)

    assert {o.integration_type: o.result.status.value for o in outcomes} == {
        "http": "healthy",
        "slack": "healthy",
    }


async def test_a_check_slower_than_the_timeout_is_cancelled_and_marked_unreachable(
    make_runner: Callable[..., Runner], providers: FakeProviders, org: UUID
) -> None:
    cancelled = asyncio.Event()

    async def hang(_: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    providers.handlers["slack.test"] = hang

    outcomes = await run_health_checks(make_runner(timeout=0.3), org)

    by_type = {o.integration_type: o for o in outcomes}
    slack = by_type["slack"].result
    assert slack.status.value == "unreachable"
    assert slack.error is not None and slack.error.category.value == "TIMEOUT"
    assert slack.error.recovery_action.value == "WAIT_AND_RETRY"
    assert cancelled.is_set()
    assert by_type["http"].result.status.value == "healthy"


async def test_a_check_that_throws_is_marked_unreachable_without_stopping_the_others(
    make_runner: Callable[..., Runner], providers: FakeProviders, org: UUID
) -> None:
    async def explode(_: httpx.Request) -> httpx.Response:
        raise RuntimeError(f"boom with {SLACK_TOKEN}")

    providers.handlers["slack.test"] = explode

    with structlog.testing.capture_logs() as logs:
        outcomes = await run_health_checks(make_runner(), org)

    by_type = {o.integration_type: o for o in outcomes}
    slack = by_type["slack"]
    assert slack.result.status.value == "unreachable"
    assert slack.result.error is not None
    assert slack.result.error.category.value == "UNKNOWN"
    assert "RuntimeError" in slack.result.error.message
    assert SLACK_TOKEN not in slack.result.error.message
    assert slack.status is not None and slack.status.status == "unreachable"
    assert by_type["http"].result.status.value == "healthy"
    assert any(entry["event"] == "check_crashed" for entry in logs)
    assert SLACK_TOKEN not in repr(logs)


async def test_a_transient_network_failure_is_retried_once_before_failing(
    make_runner: Callable[..., Runner], providers: FakeProviders, org: UUID
) -> None:
    attempts = 0

    async def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return await ok_http(request)

    providers.handlers["service.test"] = flaky

    outcomes = await run_health_checks(make_runner(), org, integration_types_filter={"http"})

    assert [o.result.status.value for o in outcomes] == ["healthy"]
    assert attempts == 2


async def test_a_lasting_network_failure_is_tried_twice_then_reported(
    make_runner: Callable[..., Runner], providers: FakeProviders, org: UUID
) -> None:
    async def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    providers.handlers["service.test"] = refused

    (outcome,) = await run_health_checks(make_runner(), org, integration_types_filter={"http"})

    assert outcome.result.status.value == "unreachable"
    assert outcome.result.error is not None
    assert outcome.result.error.category.value == "NETWORK"
    assert providers.calls["service.test"] == 2


async def test_a_run_updates_the_existing_status_row_and_writes_history(
    make_runner: Callable[..., Runner], providers: FakeProviders, org: UUID, pool: asyncpg.Pool
) -> None:
    runner = make_runner()
    await run_health_checks(runner, org)

    async def auth_failed(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": False, "error": "invalid_auth"})

    providers.handlers["slack.test"] = auth_failed
    await run_health_checks(runner, org)

    rows = await pool.fetch(
        "SELECT integration_type, status, error_category, recovery_action, latency_ms "
        "FROM integration_health_status WHERE org_id = $1 ORDER BY integration_type",
        org,
    )
    history = await pool.fetch(
        "SELECT status FROM health_check_history WHERE org_id = $1 AND integration_type = 'slack' "
        "ORDER BY checked_at DESC",
        org,
    )
    logged = await pool.fetchval("SELECT count(*) FROM health_check_results WHERE org_id = $1", org)
    assert [(r["integration_type"], r["status"], r["error_category"]) for r in rows] == [
        ("http", "healthy", None),
        ("slack", "unreachable", "AUTH"),
    ]
    assert rows[1]["recovery_action"] == "UPDATE_CREDENTIALS"
    assert all(r["latency_ms"] is not None for r in rows)
    assert [r["status"] for r in history] == ["unreachable", "healthy"]
    assert logged == 4


async def test_every_check_is_published_and_flips_are_marked(
    make_runner: Callable[..., Runner], org: UUID, redis: Redis
) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(events.org_channel(org), events.ALL_ORGS_CHANNEL)
    await pubsub.get_message(timeout=1)  # subscribe confirmations
    await pubsub.get_message(timeout=1)
    runner = make_runner()

    await run_health_checks(runner, org, integration_types_filter={"http"})
    await run_health_checks(runner, org, integration_types_filter={"http"})

    received: list[tuple[str, dict[str, Any]]] = []
    while len(received) < 4:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert message is not None, received
        received.append((message["channel"].decode(), json.loads(message["data"])))
    await pubsub.aclose()

    first, second = received[0][1], received[2][1]
    assert [c for c, _ in received] == [events.org_channel(org), events.ALL_ORGS_CHANNEL] * 2
    assert (first["previousStatus"], first["status"], first["changed"]) == (
        "UNKNOWN",
        "HEALTHY",
        True,
    )
    assert (second["previousStatus"], second["changed"]) == ("HEALTHY", False)
    assert first["health"]["displayName"] == "HTTP service"
    assert first["health"]["connectionState"] == "CONNECTED"


async def test_disabled_integrations_and_passive_ones_are_not_pinged_by_the_schedule(
    make_runner: Callable[..., Runner], providers: FakeProviders, org: UUID, pool: asyncpg.Pool
) -> None:
    await pool.execute(
        "UPDATE integration_config SET enabled = false "
        "WHERE org_id = $1 AND integration_type = 'http'",
        org,
    )
    await pool.execute(
        "UPDATE integration_config SET monitoring_mode = 'PASSIVE' "
        "WHERE org_id = $1 AND integration_type = 'slack'",
        org,
    )

    scheduled = await run_health_checks(make_runner(), org)
    manual = await run_health_checks(make_runner(), org, trigger="manual")

    assert scheduled == []
    assert [o.integration_type for o in manual] == ["slack"]
    assert providers.calls == {"slack.test": 1}


async def test_a_stored_invalid_configuration_is_reported_without_calling_the_provider(
    make_runner: Callable[..., Runner], providers: FakeProviders, org: UUID, pool: asyncpg.Pool
) -> None:
    await pool.execute(
        'UPDATE integration_config SET config = \'{"url": "not a url"}\' '
        "WHERE org_id = $1 AND integration_type = 'http'",
        org,
    )

    (outcome,) = await run_health_checks(make_runner(), org, integration_types_filter={"http"})

    assert outcome.result.error is not None
    assert outcome.result.error.category.value == "CONFIGURATION"
    assert outcome.result.error.recovery_action.value == "FIX_CONFIGURATION"
    assert "config.url" in outcome.result.error.message
    assert providers.calls == {}


async def test_missing_credentials_are_a_configuration_problem(
    make_runner: Callable[..., Runner], org: UUID, pool: asyncpg.Pool
) -> None:
    await pool.execute("DELETE FROM integration_credentials WHERE org_id = $1", org)

    (outcome,) = await run_health_checks(make_runner(), org, integration_types_filter={"slack"})

    assert outcome.result.error is not None
    assert outcome.result.error.category.value == "CONFIGURATION"
    assert outcome.result.error.recovery_action.value == "UPDATE_CREDENTIALS"


async def test_credentials_sealed_with_a_retired_key_are_reported_not_crashed(
    make_runner: Callable[..., Runner], org: UUID, pool: asyncpg.Pool
) -> None:
    await pool.execute(
        "UPDATE integration_credentials SET key_id = 'retired' WHERE org_id = $1", org
    )

    with structlog.testing.capture_logs() as logs:
        (outcome,) = await run_health_checks(make_runner(), org, integration_types_filter={"slack"})

    assert outcome.result.error is not None
    assert outcome.result.error.category.value == "CONFIGURATION"
    assert "decrypted" in outcome.result.error.message
    assert [e["event"] for e in logs] == ["credentials_unreadable"]


def count_credential_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    original = credentials.load_many

    async def counting(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(credentials, "load_many", counting)
    return reads


async def test_a_run_reads_the_orgs_credentials_with_one_query(
    make_runner: Callable[..., Runner], org: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_credential_reads(monkeypatch)

    outcomes = await run_health_checks(make_runner(), org)

    assert len(reads) == 1
    assert {o.result.status.value for o in outcomes} == {"healthy"}


async def test_credentials_saved_during_a_run_are_what_a_retry_reads(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    source = VaultCredentialSource(pool, vault)
    async with pool.acquire() as conn:
        ids = [i.id for i in (await integrations.list_for_orgs(conn, [org]))[org]]
        run_view = (await for_integrations(source, conn, [org], ids))[org]

    before = await run_view.load(org, "slack")
    await run_view.save(org, "slack", {"botToken": "xoxb-refreshed"})
    after = await run_view.load(org, "slack")
    stored = await source.load(org, "slack")

    assert before is not None and before["botToken"] == SLACK_TOKEN
    assert after is not None and after["botToken"] == "xoxb-refreshed"
    assert stored is not None and stored["botToken"] == "xoxb-refreshed"


async def _org_with_slack(pool: asyncpg.Pool, vault: Vault, token: str) -> UUID:
    async with as_service(pool) as conn:
        org_id = await make_org(conn)
        slack = await make_integration(
            conn, org_id, "slack", config={"baseUrl": f"https://slack.test/{org_id.hex}/api"}
        )
        await credentials.store(
            conn, vault, org_id=org_id, integration_id=slack.id, payload={"botToken": token}
        )
    return org_id


async def test_a_batched_run_reads_once_and_each_org_uses_its_own_credentials(
    pool: asyncpg.Pool,
    vault: Vault,
    make_runner: Callable[..., Runner],
    providers: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = {
        await _org_with_slack(pool, vault, f"xoxb-org-{n}"): f"xoxb-org-{n}" for n in range(3)
    }
    seen: dict[str, str] = {}

    async def slack(request: httpx.Request) -> httpx.Response:
        seen[request.url.path.split("/")[1]] = request.headers["Authorization"]
        return await ok_slack(request)

    providers.handlers["slack.test"] = slack
    reads = count_credential_reads(monkeypatch)

    outcomes = await run_checks(make_runner(), [OrgRun(org) for org in tokens], trigger="manual")

    assert len(reads) == 1
    assert {org: [o.result.status.value for o in found] for org, found in outcomes.items()} == {
        org: ["healthy"] for org in tokens
    }
    assert seen == {org.hex: f"Bearer {token}" for org, token in tokens.items()}
    stored = await pool.fetch("SELECT org_id, count(*) AS n FROM health_check_results GROUP BY 1")
    assert {r["org_id"]: r["n"] for r in stored} == dict.fromkeys(tokens, 1)


async def test_one_orgs_failing_write_does_not_hold_back_the_others(
    pool: asyncpg.Pool, vault: Vault, make_runner: Callable[..., Runner]
) -> None:
    good, bad, other = [await _org_with_slack(pool, vault, "xoxb-t") for _ in range(3)]

    async def alerting(conn: asyncpg.Connection, rows: Any, now: Any) -> list[Any]:
        if any(r.org_id == bad for r in rows):
            raise RuntimeError("alerting failed for one org")
        return []

    runner = replace(make_runner(), on_recorded=alerting)
    with pytest.raises(RuntimeError):
        await run_checks(runner, [OrgRun(good), OrgRun(bad), OrgRun(other)], trigger="manual")

    stored = await pool.fetch("SELECT org_id, count(*) AS n FROM health_check_results GROUP BY 1")
    assert {r["org_id"]: r["n"] for r in stored} == {good: 1, other: 1}


async def test_a_run_reads_only_the_credentials_of_what_it_checks(
    make_runner: Callable[..., Runner],
    org: UUID,
    monkeypatch: pytest.MonkeyPatch,
    pool: asyncpg.Pool,
) -> None:
    asked: list[list[UUID]] = []
    original = credentials.load_many

    async def recording(conn: Any, vault: Any, integration_ids: Any) -> Any:
        asked.append(list(integration_ids))
        return await original(conn, vault, integration_ids)

    monkeypatch.setattr(credentials, "load_many", recording)

    await run_health_checks(make_runner(), org, integration_types_filter={"http"})

    http_id = await pool.fetchval(
        "SELECT id FROM integration_config WHERE org_id = $1 AND integration_type = 'http'", org
    )
    assert asked == [[http_id]]

"""runCheck end to end: API, Redis queue, a real worker, the simulator as provider."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from schema.app import create_app
from tests.schema.conftest import Api, api_settings, error_codes
from tests.stopping import stop_worker
from workers.main import build_worker

RUN = """mutation($t: String!) { runCheck(integrationType: $t) {
  jobId integrationType enqueuedAt
  result { status connectionState latencyMs error { category } } } }"""


@contextlib.asynccontextmanager
async def stack(dsn: str, redis_url: str, **settings: str) -> AsyncIterator[Api]:
    """API in-process and a worker running beside it."""
    config = api_settings(dsn, redis_url, **settings)
    worker = build_worker(config, scheduler_tick=False, handle_signals=False, poll_delay=0.02)
    task = asyncio.create_task(worker.async_run())
    app = create_app(config)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            yield Api(app, c)
    finally:
        await stop_worker(task, worker)


async def configure(api: Api, admin: str, simulator_url: str, key: str, kinds: list[str]) -> None:
    for kind in kinds:
        config: dict[str, Any] = {
            "slack": {"baseUrl": f"{simulator_url}/{key}/slack/api"},
            "http": {"url": f"{simulator_url}/{key}/http"},
            "xledger": {"baseUrl": f"{simulator_url}/{key}/xledger"},
        }[kind]
        saved = await api.gql(
            "mutation($i: IntegrationInput!) { upsertIntegration(input: $i) { id } }",
            {"i": {"integrationType": kind, "config": config}},
            as_=admin,
        )
        assert "errors" not in saved, saved
        secret = {"slack": {"botToken": "xoxb-1"}, "xledger": {"apiToken": "t"}}.get(kind)
        if secret:
            await api.gql(
                "mutation($t: String!, $c: JSON!) { setIntegrationCredentials("
                "integrationType: $t, credentials: $c) { id } }",
                {"t": kind, "c": secret},
                as_=admin,
            )


@pytest.fixture
def key() -> str:
    return uuid4().hex


async def test_run_check_returns_fresh_health(
    dsn: str, redis_url: str, simulator_url: str, key: str, tokens: Callable[..., str]
) -> None:
    async with stack(dsn, redis_url) as api:
        await configure(api, tokens("org_admin"), simulator_url, key, ["slack"])

        body = await api.gql(RUN, {"t": "slack"}, as_=tokens("coordinator"))

        run = body["data"]["runCheck"]
        assert run["result"]["status"] == "HEALTHY"
        assert run["result"]["connectionState"] == "CONNECTED"
        listed = await api.gql("{ orgHealth { status checkedAt } }", as_=tokens("member"))
        assert listed["data"]["orgHealth"][0]["status"] == "HEALTHY"


async def test_a_failing_provider_is_reported_with_its_category(
    dsn: str, redis_url: str, simulator_url: str, key: str, tokens: Callable[..., str]
) -> None:
    async with stack(dsn, redis_url) as api, httpx.AsyncClient(base_url=simulator_url) as sim:
        await configure(api, tokens("org_admin"), simulator_url, key, ["xledger"])
        await sim.put(f"/_control/{key}", json={"mode": "auth"})

        body = await api.gql(RUN, {"t": "xledger"}, as_=tokens("service"))

        result = body["data"]["runCheck"]["result"]
        assert result["status"] == "UNREACHABLE"
        assert result["error"]["category"] == "AUTH"


async def test_two_concurrent_run_checks_share_one_job(
    dsn: str, redis_url: str, simulator_url: str, key: str, tokens: Callable[..., str]
) -> None:
    async with stack(dsn, redis_url) as api, httpx.AsyncClient(base_url=simulator_url) as sim:
        await configure(api, tokens("org_admin"), simulator_url, key, ["http"])
        await sim.put(f"/_control/{key}", json={"mode": "slow", "ms": 600})

        first, second = await asyncio.gather(
            api.gql(RUN, {"t": "http"}, as_=tokens("coordinator", sub="ann")),
            api.gql(RUN, {"t": "http"}, as_=tokens("coordinator", sub="bob")),
        )

        counts = (await sim.get(f"/_control/{key}")).json()["requests"]
    assert first["data"]["runCheck"]["jobId"] == second["data"]["runCheck"]["jobId"]
    assert first["data"]["runCheck"]["result"]["status"] == "HEALTHY"
    assert second["data"]["runCheck"]["result"]["status"] == "HEALTHY"
    assert counts["http"] == 1


async def test_manual_checks_are_rate_limited_per_integration_and_per_caller(
    dsn: str, redis_url: str, simulator_url: str, key: str, tokens: Callable[..., str]
) -> None:
    async with stack(dsn, redis_url, IHM_MANUAL_CHECKS_PER_MINUTE="2") as api:
        await configure(api, tokens("org_admin"), simulator_url, key, ["http", "slack", "xledger"])
        caller = tokens("coordinator", sub="eager")

        done = await api.gql(RUN, {"t": "http"}, as_=caller)
        again = await api.gql(RUN, {"t": "http"}, as_=caller)
        second = await api.gql(RUN, {"t": "slack"}, as_=caller)
        third = await api.gql(RUN, {"t": "xledger"}, as_=caller)

    assert done["data"]["runCheck"]["result"]["status"] == "HEALTHY"
    assert error_codes(again) == ["RATE_LIMITED"]
    assert 1 <= again["errors"][0]["extensions"]["retryAfterSeconds"] <= 5
    assert "errors" not in second
    assert error_codes(third) == ["RATE_LIMITED"]
    assert 1 <= third["errors"][0]["extensions"]["retryAfterSeconds"] <= 60


async def test_unknown_or_disabled_integrations_are_refused(
    dsn: str,
    redis_url: str,
    simulator_url: str,
    key: str,
    tokens: Callable[..., str],
    org_a: UUID,
) -> None:
    async with stack(dsn, redis_url) as api:
        await configure(api, tokens("org_admin"), simulator_url, key, ["http"])
        await api.gql(
            'mutation { setIntegrationEnabled(integrationType: "http", enabled: false) { id } }',
            as_=tokens("org_admin"),
        )

        missing = await api.gql(RUN, {"t": "gmail"}, as_=tokens("coordinator"))
        disabled = await api.gql(RUN, {"t": "http"}, as_=tokens("coordinator"))
        member = await api.gql(RUN, {"t": "http"}, as_=tokens("member"))

    assert error_codes(missing) == ["NOT_FOUND"]
    assert error_codes(disabled) == ["BAD_USER_INPUT"]
    assert error_codes(member) == ["FORBIDDEN"]

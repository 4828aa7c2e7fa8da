"""Subscriptions end to end over a real socket: uvicorn, an arq worker, the simulator.

A check runs in the worker, which publishes to Redis after its commit; the API's
StatusBroadcast fans the event out to GraphQL subscriptions on WebSockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import uvicorn
from arq.connections import ArqRedis
from graphql import OperationType
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from starlette.applications import Starlette
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from db import alerts
from db.pool import create_pool
from db.scope import as_service
from embedded import EmbeddedRedis, free_port
from resolvers.tokens import mint_token
from schema.app import MAX_SUBSCRIPTIONS_PER_CONNECTION, create_app
from schema.broadcast import StatusBroadcast
from tests.schema.conftest import SECRET, Api, api_settings, token
from tests.schema.ws_client import LEGACY_WS, GqlSocket, bearer, gql_socket
from tests.stopping import stop_worker
from workers.events import ALL_ORGS_CHANNEL, alert_channel, org_channel
from workers.main import build_worker, queue_client

STATUS_CHANGED = """subscription($org: UUID, $type: String, $unchanged: Boolean! = false,
  $all: Boolean! = false) {
  statusChanged(orgId: $org, integrationType: $type, includeUnchanged: $unchanged,
    allOrgs: $all) {
    orgId integrationType previousStatus status changedAt
    health { integrationType status connectionState latencyMs checkedAt
      consecutiveFailures error { category } } } }"""

ALERT_CHANGED = """subscription($org: UUID) { alertChanged(orgId: $org) {
  id orgId integrationType kind severity state title acknowledgedAt } }"""

# Long enough for an event already published to have crossed Redis and the socket.
QUIET_SECONDS = 0.5


@dataclass
class Live:
    """The API served by uvicorn on a free port, with a worker beside it."""

    app: Starlette
    api: Api
    ws_url: str
    queue: ArqRedis
    redis: Redis
    simulator: httpx.AsyncClient
    streams: int  # subscription streams open in this process before the stack started

    @property
    def broadcast(self) -> StatusBroadcast:
        broadcast: StatusBroadcast = self.app.state.services.broadcast
        return broadcast

    @contextlib.asynccontextmanager
    async def socket(
        self, token: str | None = None, *, protocol: str = "graphql-transport-ws", **kwargs: Any
    ) -> AsyncIterator[GqlSocket]:
        """A socket, acknowledged with `token` in connection_init when one is given."""
        async with gql_socket(self.ws_url, protocol=protocol, **kwargs) as socket:
            if token is not None:
                await socket.init(bearer(token))
            yield socket

    async def check(self, org: UUID) -> list[dict[str, Any]]:
        """Run the org's checks in the worker; the events are published when it returns."""
        job = await self.queue.enqueue_job("check_org", str(org), trigger="manual")
        assert job is not None
        summaries: list[dict[str, Any]] = await job.result(timeout=10, poll_delay=0.02)
        return summaries

    async def mode(self, key: str, mode: str) -> None:
        (await self.simulator.put(f"/_control/{key}", json={"mode": mode})).raise_for_status()

    async def subscribed(self, channel: str, *, streams: int = 1, within: float = 5) -> None:
        """Wait until the API listens on `channel` and `streams` subscriptions have started
        reading: a client is never told when its subscription is live."""

        async def listening() -> bool:
            counts = await self.redis.pubsub_numsub(channel)
            return bool(counts) and counts[0][1] > 0 and active_streams() >= self.streams + streams

        await eventually(listening, within)

    async def configure(self, org: UUID, kind: str, key: str) -> None:
        """An integration of `org` pointing at the simulator under `key`."""
        admin = token("org_admin", org)
        config = {
            "http": {"url": f"{self.simulator.base_url}{key}/http"},
            "slack": {"baseUrl": f"{self.simulator.base_url}{key}/slack/api"},
        }[kind]
        saved = await self.api.gql(
            "mutation($i: IntegrationInput!) { upsertIntegration(input: $i) { id } }",
            {"i": {"integrationType": kind, "config": config}},
            as_=admin,
        )
        assert "errors" not in saved, saved
        if kind == "slack":
            secret = await self.api.gql(
                "mutation($t: String!, $c: JSON!) { setIntegrationCredentials("
                "integrationType: $t, credentials: $c) { id } }",
                {"t": kind, "c": {"botToken": "xoxb-1"}},
                as_=admin,
            )
            assert "errors" not in secret, secret


def active_streams() -> int:
    return int(REGISTRY.get_sample_value("ihm_subscriptions_active") or 0)


async def eventually(condition: Callable[[], Awaitable[bool]], within: float) -> None:
    """Poll `condition` (state in another process: nothing to wait on) until it holds."""
    async with asyncio.timeout(within):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def live(dsn: str, redis_url: str, simulator_url: str) -> AsyncIterator[Live]:
    settings = api_settings(dsn, redis_url)
    worker = build_worker(settings, scheduler_tick=False, handle_signals=False, poll_delay=0.02)
    worker_task = asyncio.create_task(worker.async_run())
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    server_task = asyncio.create_task(server.serve())
    queue = queue_client(redis_url)
    redis = Redis.from_url(redis_url)
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not server_task.done(), "uvicorn stopped at start"
                await asyncio.sleep(0.01)
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
            httpx.AsyncClient(base_url=f"{simulator_url}/") as simulator,
        ):
            yield Live(
                app=app,
                api=Api(app, client),
                ws_url=f"ws://127.0.0.1:{port}/graphql",
                queue=queue,
                redis=redis,
                simulator=simulator,
                streams=active_streams(),
            )
    finally:
        server.should_exit = True
        await server_task
        await stop_worker(worker_task, worker)
        await queue.aclose()
        await redis.aclose()


@pytest.fixture
async def stack(dsn: str, redis_url: str, simulator_url: str) -> AsyncIterator[Live]:
    async with live(dsn, redis_url, simulator_url) as running:
        yield running


@pytest.fixture
def key() -> str:
    return uuid4().hex


# -- delivery -----------------------------------------------------------------


async def test_coordinator_receives_a_status_flip_with_its_health_snapshot(
    stack: Live, org_a: UUID, key: str
) -> None:
    # given an http integration checked healthy, and a coordinator subscribed
    await stack.configure(org_a, "http", key)
    await stack.check(org_a)
    async with stack.socket(token("coordinator", org_a)) as socket:
        op = await socket.subscribe(STATUS_CHANGED)
        await stack.subscribed(org_channel(org_a))

        # when the provider starts failing and a check runs
        await stack.mode(key, "server_error")
        await stack.check(org_a)

        # then the flip arrives with the health snapshot
        event = (await socket.data(op))["statusChanged"]
    assert event["orgId"] == str(org_a)
    assert event["integrationType"] == "http"
    assert event["previousStatus"] == "HEALTHY"
    assert event["status"] == "UNREACHABLE"
    health = event["health"]
    assert health["status"] == "UNREACHABLE"
    assert health["connectionState"] == "ERROR"
    assert health["consecutiveFailures"] == 1
    assert health["error"]["category"] == "PROVIDER_ERROR"
    assert health["checkedAt"] == event["changedAt"]


async def test_the_token_may_come_in_the_websocket_handshake_header(
    stack: Live, org_a: UUID, key: str
) -> None:
    # given a member who authenticates with the handshake's Authorization header
    await stack.configure(org_a, "http", key)
    headers = bearer(token("member", org_a))
    async with stack.socket(headers=headers) as socket:
        await socket.init()
        op = await socket.subscribe(STATUS_CHANGED)
        await stack.subscribed(org_channel(org_a))

        # when the first check of the integration runs
        await stack.check(org_a)

        # then the change from UNKNOWN arrives
        event = (await socket.data(op))["statusChanged"]
    assert (event["previousStatus"], event["status"]) == ("UNKNOWN", "HEALTHY")


async def test_the_legacy_graphql_ws_protocol_delivers_events(
    stack: Live, org_a: UUID, key: str
) -> None:
    # given a subscriber speaking graphql-ws (connection_init, start, data)
    await stack.configure(org_a, "http", key)
    async with stack.socket(token("coordinator", org_a), protocol=LEGACY_WS) as socket:
        op = await socket.subscribe(STATUS_CHANGED)
        await stack.subscribed(org_channel(org_a))

        # when a check changes the status
        await stack.check(org_a)

        # then a `data` message carries it
        event = (await socket.data(op))["statusChanged"]
    assert (event["integrationType"], event["status"]) == ("http", "HEALTHY")


async def test_include_unchanged_and_integration_type_filter_what_arrives(
    stack: Live, org_a: UUID
) -> None:
    # given http and slack integrations, both checked healthy
    http_key, slack_key = uuid4().hex, uuid4().hex
    await stack.configure(org_a, "http", http_key)
    await stack.configure(org_a, "slack", slack_key)
    await stack.check(org_a)
    async with stack.socket(token("member", org_a)) as socket:
        every_http = await socket.subscribe(STATUS_CHANGED, {"type": "http", "unchanged": True})
        flips = await socket.subscribe(STATUS_CHANGED)
        slack_only = await socket.subscribe(STATUS_CHANGED, {"type": "slack"})
        await stack.subscribed(org_channel(org_a), streams=3)

        # when a check changes nothing
        await stack.check(org_a)

        # then only includeUnchanged hears of it, and only for its type
        repeat = (await socket.data(every_http))["statusChanged"]
        assert (repeat["previousStatus"], repeat["status"]) == ("HEALTHY", "HEALTHY")
        await socket.nothing_for(flips, QUIET_SECONDS)
        await socket.nothing_for(every_http, 0)

        # when the http integration flips
        await stack.mode(http_key, "server_error")
        await stack.check(org_a)

        # then the flip arrives, but not to the slack-only subscriber
        flip = (await socket.data(flips))["statusChanged"]
        assert (flip["integrationType"], flip["status"]) == ("http", "UNREACHABLE")
        assert (await socket.data(every_http))["statusChanged"]["status"] == "UNREACHABLE"
        await socket.nothing_for(slack_only, QUIET_SECONDS)

        # when slack flips too
        await stack.mode(slack_key, "auth")
        await stack.check(org_a)

        # then the slack-only subscriber hears of it (and only of it)
        slack = (await socket.data(slack_only))["statusChanged"]
        assert (slack["integrationType"], slack["status"]) == ("slack", "UNREACHABLE")
        assert slack["health"]["error"]["category"] == "AUTH"
        assert (await socket.data(flips))["statusChanged"]["integrationType"] == "slack"
        repeat = (await socket.data(every_http))["statusChanged"]
        assert (repeat["integrationType"], repeat["status"]) == ("http", "UNREACHABLE")


async def test_identical_subscriptions_share_one_execution_per_event(
    stack: Live, org_a: UUID, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    executions: list[str] = []
    original = StrawberryGraphQLCoreExecutionContext.execute_operation

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.operation.operation is OperationType.SUBSCRIPTION:
            executions.append(self.context_value.principal.role)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_operation", counting)
    # given two members and a coordinator with the same subscription, and a member
    # with a different selection
    await stack.configure(org_a, "http", key)
    smaller = "subscription { statusChanged { integrationType status } }"
    async with (
        stack.socket(token("member", org_a, sub="ann")) as ann,
        stack.socket(token("member", org_a, sub="bob")) as bob,
        stack.socket(token("coordinator", org_a)) as coordinator,
    ):
        ops = [
            (ann, await ann.subscribe(STATUS_CHANGED)),
            (bob, await bob.subscribe(STATUS_CHANGED)),
            (coordinator, await coordinator.subscribe(STATUS_CHANGED)),
            (ann, await ann.subscribe(smaller)),
        ]
        await stack.subscribed(org_channel(org_a), streams=4)

        # when a check changes the status
        await stack.check(org_a)

        # then everyone hears of it
        events = [(await socket.data(op))["statusChanged"] for socket, op in ops]
    assert [e["status"] for e in events] == ["HEALTHY"] * 4
    assert events[0] == events[1] == events[2]
    assert events[3] == {"integrationType": "http", "status": "HEALTHY"}
    # and the selection ran once per distinct (document, variables, role, org)
    assert sorted(executions) == ["coordinator", "member", "member"]


# -- authorization --------------------------------------------------------------


def forbidden(message: dict[str, Any]) -> bool:
    return message["type"] == "error" and [e["extensions"]["code"] for e in message["payload"]] == [
        "FORBIDDEN"
    ]


async def test_another_orgs_subscriber_is_refused_and_hears_nothing(
    stack: Live, org_a: UUID, org_b: UUID, key: str
) -> None:
    # given org A's integration, and org B's coordinator asking for org A
    await stack.configure(org_a, "http", key)
    async with stack.socket(token("coordinator", org_b)) as socket:
        prying = await socket.subscribe(STATUS_CHANGED, {"org": str(org_a)})
        refused = await socket.receive(prying)
        own = await socket.subscribe(STATUS_CHANGED, {"unchanged": True})
        await stack.subscribed(org_channel(org_b))

        # when org A's integration changes
        await stack.check(org_a)

        # then B was refused before any event and hears nothing of A
        assert forbidden(refused), refused
        await socket.nothing_for(prying, QUIET_SECONDS)
        await socket.nothing_for(own, 0)


async def test_only_a_global_admin_may_watch_all_orgs(stack: Live, org_a: UUID, key: str) -> None:
    # given a global admin and an org admin, both asking for every org
    await stack.configure(org_a, "http", key)
    async with (
        stack.socket(token("global_admin", None)) as admin,
        stack.socket(token("org_admin", org_a)) as org_admin,
    ):
        everything = await admin.subscribe(STATUS_CHANGED, {"all": True})
        named = await admin.subscribe(STATUS_CHANGED, {"org": str(org_a)})
        refused = await org_admin.receive(await org_admin.subscribe(STATUS_CHANGED, {"all": True}))
        await stack.subscribed(ALL_ORGS_CHANNEL, streams=2)
        await stack.subscribed(org_channel(org_a), streams=2)

        # when org A's integration changes
        await stack.check(org_a)

        # then the global admin hears of it both ways; the org admin was refused
        assert (await admin.data(everything))["statusChanged"]["orgId"] == str(org_a)
        assert (await admin.data(named))["statusChanged"]["orgId"] == str(org_a)
    assert forbidden(refused), refused


def expired_token(org: UUID) -> str:
    # Past the verifier's leeway (30 s).
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    return mint_token(
        SECRET, role="member", org_id=org, sub="m", ttl_seconds=60, audience="ihm", now=an_hour_ago
    )


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", LEGACY_WS])
async def test_connection_init_without_a_usable_token_closes_the_socket(
    stack: Live, org_a: UUID, protocol: str
) -> None:
    cases: dict[str, tuple[dict[str, str], int]] = {
        "no token": ({}, 4401),
        "not a JWT": (bearer("not-a-jwt"), 4401),
        "bad signature": (bearer(token("member", org_a)[:-4] + "AAAA"), 4401),
        "not a bearer": ({"Authorization": token("member", org_a)}, 4401),
        "expired": (bearer(expired_token(org_a)), 4401),
        "service role": (bearer(token("service", org_a)), 4403),
    }
    for case, (payload, code) in cases.items():
        async with stack.socket(protocol=protocol) as socket:
            # when a socket's connection_init carries no usable token
            await socket.send({"type": "connection_init", "payload": payload})

            # then the server closes it with the code the client can act on
            if protocol == LEGACY_WS:  # after saying why, as graphql-ws does
                error = await socket.receive(types={"connection_error"})
                assert error["payload"]["message"], case
            closed = await socket.closed()
        assert closed.code == code, (case, closed)


async def test_a_bad_token_in_the_handshake_header_closes_the_socket(stack: Live) -> None:
    async with stack.socket(headers=bearer("not-a-jwt")) as socket:
        await socket.send({"type": "connection_init", "payload": {}})
        closed = await socket.closed()
    assert closed.code == 4401


async def test_a_message_that_is_not_an_object_closes_the_socket_as_malformed(
    stack: Live, org_a: UUID
) -> None:
    for raw in ("[]", '"subscribe"', '{"type": "subscribe", "id": "1", "payload": "{}"}'):
        async with stack.socket(token("member", org_a)) as socket:
            # when the client sends JSON that is not a protocol message
            await socket.ws.send(raw)

            # then graphql-transport-ws's 4400 closes it (not a server error)
            closed = await socket.closed()
        assert closed.code == 4400, (raw, closed)


# -- resilience and lifetime ----------------------------------------------------------


def disconnected(broadcast: StatusBroadcast) -> Callable[[], Awaitable[bool]]:
    async def lost() -> bool:
        return not broadcast.connected.is_set()

    return lost


async def test_a_subscription_survives_a_redis_restart(
    stack: Live, org_a: UUID, key: str, redis_server: EmbeddedRedis
) -> None:
    # given a subscriber listening on org A
    await stack.configure(org_a, "http", key)
    await stack.check(org_a)
    channel = org_channel(org_a)
    async with stack.socket(token("coordinator", org_a)) as socket:
        op = await socket.subscribe(STATUS_CHANGED)
        await stack.subscribed(channel)

        # when Redis restarts, staying away long enough for a reconnection attempt to fail
        redis_server.stop()
        try:
            await eventually(disconnected(stack.broadcast), 5)
            await asyncio.sleep(0.5)
        finally:
            redis_server.start()
        await stack.subscribed(channel, within=10)  # the watchdog re-subscribed

        # and then the integration flips
        await stack.mode(key, "server_error")
        await stack.check(org_a)

        # then the existing subscription receives it
        event = (await socket.data(op))["statusChanged"]
    assert (event["previousStatus"], event["status"]) == ("HEALTHY", "UNREACHABLE")


async def test_a_subscription_ends_when_its_token_expires(
    stack: Live, org_a: UUID, key: str
) -> None:
    # given a subscription made with a token about to expire
    short = token("member", org_a, ttl=2)
    expires = time.monotonic() + 2
    async with stack.socket(short) as socket:
        op = await socket.subscribe(STATUS_CHANGED)

        # when the token expires
        ended = await socket.receive(op, within=5)

        # then the server ends it with UNAUTHENTICATED, and not before
        assert time.monotonic() >= expires - 1
        assert ended["type"] in ("next", "error"), ended
        errors = ended["payload"] if ended["type"] == "error" else ended["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]
        if ended["type"] == "next":
            assert (await socket.receive(op))["type"] == "complete"


async def test_an_acknowledged_alert_reaches_the_orgs_subscriber(
    stack: Live, dsn: str, org_a: UUID, key: str
) -> None:
    # given a firing alert on org A's integration, and a member subscribed to alerts
    await stack.configure(org_a, "http", key)
    pool = await create_pool(dsn, max_size=1)
    try:
        async with as_service(pool) as conn:
            alert, opened = await alerts.open_or_repeat(
                conn,
                org_id=org_a,
                integration_type="http",
                kind="UNREACHABLE",
                severity="CRITICAL",
                category="NETWORK",
                title="http is unreachable",
                message="The service did not answer.",
                guidance="Check that it is up.",
                now=datetime.now(UTC),
            )
    finally:
        await pool.close()
    assert opened
    async with stack.socket(token("member", org_a)) as socket:
        op = await socket.subscribe(ALERT_CHANGED)
        await stack.subscribed(alert_channel(org_a))

        # when a coordinator acknowledges the alert
        acked = await stack.api.gql(
            "mutation($id: UUID!) { acknowledgeAlert(alertId: $id) { id } }",
            {"id": str(alert.id)},
            as_=token("coordinator", org_a),
        )
        assert "errors" not in acked, acked

        # then the subscriber sees it acknowledged
        event = (await socket.data(op))["alertChanged"]
    assert event["id"] == str(alert.id)
    assert event["orgId"] == str(org_a)
    assert (event["kind"], event["state"]) == ("UNREACHABLE", "FIRING")
    assert event["acknowledgedAt"] is not None


async def test_the_subscription_cap_refuses_one_more_and_keeps_the_socket(
    stack: Live, org_a: UUID, key: str
) -> None:
    # given a socket holding as many subscriptions as allowed
    await stack.configure(org_a, "http", key)
    async with stack.socket(token("member", org_a)) as socket:
        ops = [
            await socket.subscribe(STATUS_CHANGED) for _ in range(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        ]

        # when it asks for one more
        extra = await socket.subscribe(STATUS_CHANGED)

        # then that one is refused, and the others still deliver
        refused = await socket.receive(extra)
        assert refused["type"] == "error", refused
        assert "limit" in refused["payload"][0]["message"]
        await stack.subscribed(org_channel(org_a), streams=MAX_SUBSCRIPTIONS_PER_CONNECTION)
        await stack.check(org_a)
        for op in ops:
            assert (await socket.data(op))["statusChanged"]["status"] == "HEALTHY"

        # and a freed slot can be used again
        await socket.stop(ops[0])
        again = await socket.subscribe(STATUS_CHANGED, {"unchanged": True})
        await stack.subscribed(org_channel(org_a), streams=MAX_SUBSCRIPTIONS_PER_CONNECTION)
        await stack.check(org_a)
        assert (await socket.data(again))["statusChanged"]["status"] == "HEALTHY"


# -- HTTP errors ----------------------------------------------------------------


UNREADABLE = {
    "malformed JSON": (b'{"query": "{ viewer { role } ', "application/json"),
    "empty body": (b"", "application/json"),
    "JSON string": (b'"{ viewer { role } }"', "application/json"),
    "JSON null": (b"null", "application/json"),
    "JSON array": (b"[1, 2]", "application/json"),
    "not UTF-8": (b"\xff\xfe{}", "application/json"),
    "text/plain": (b"query { viewer { role } }", "text/plain"),
    "form": (b"query=x", "application/x-www-form-urlencoded"),
    "no content type": (b'{"query": "{ viewer { role } }"}', ""),
}


async def test_a_request_graphql_cannot_read_gets_a_json_error(stack: Live, org_a: UUID) -> None:
    member = bearer(token("member", org_a))
    for case, (content, content_type) in UNREADABLE.items():
        # when a client posts a body that is not a GraphQL request
        response = await stack.api.client.post(
            "/graphql", content=content, headers={"Content-Type": content_type, **member}
        )

        # then it gets a GraphQL-shaped 400
        assert response.status_code == 400, (case, response.text)
        assert response.headers["content-type"] == "application/json", case
        errors = response.json()["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"], case
        assert errors[0]["message"], case

    # and the server still answers
    after = await stack.api.gql("{ viewer { role } }", as_=token("member", org_a))
    assert after == {"data": {"viewer": {"role": "MEMBER"}}}

"""The cache of health reads: what it keeps, for whom, and what voids it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from redis.asyncio import Redis

from db import alerts, health
from db.health import CheckRecord
from db.scope import as_service
from resolvers.auth import Principal
from resolvers.tokens import mint_token
from schema.response_cache import TTL_SECONDS, ResponseCache
from tests.factories import make_integration, make_org
from tests.schema.conftest import SECRET, Api, token
from workers.events import publish_alert_events, publish_status_events

ORG_HEALTH = "{ orgHealth { integrationType status latencyMs history { status } } }"


@pytest.mark.parametrize(
    ("query", "name", "kind"),
    [
        (ORG_HEALTH, None, "cacheable"),
        ('{ integrationHealth(integrationType: "http") { status } }', None, "cacheable"),
        ("{ orgHealth { status } viewer { role } }", None, "other"),  # one root is not
        ("{ ...F } fragment F on Query { orgHealth { status } }", None, "other"),
        ("mutation { markAllNotificationsRead }", None, "mutation"),
        ("query A { orgHealth { status } } mutation B { x }", "A", "cacheable"),
        ("query A { orgHealth { status } } mutation B { x }", "B", "mutation"),
        ("query A { orgHealth { status } } query B { orgHealth { status } }", None, "other"),
        ("subscription { statusChanged { status } }", None, "other"),
        ("{ orgHealth { status ", None, "other"),  # does not parse
    ],
)
def test_which_operations_are_kept(query: str, name: str | None, kind: str) -> None:
    assert ResponseCache.kind(query, name) == kind


def principal(role: str = "member", org: UUID | None = None) -> Principal:
    return Principal(sub="u", role=role, org_id=org or uuid4(), expires_at=datetime.now(UTC))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_until_its_org_changes_or_it_is_too_old() -> None:
    clock = Clock()
    cache = ResponseCache(clock)
    caller = principal()
    key = cache.key(caller, ORG_HEALTH, None, {})
    assert key is not None
    cache.put(cache.start(key), "result")

    assert cache.get(key) == "result"
    clock.now += TTL_SECONDS + 0.01
    assert cache.get(key) is None

    cache.put(cache.start(key), "again")
    cache.org_changed(uuid4())  # another org
    assert cache.get(key) == "again"
    assert caller.org_id is not None
    cache.org_changed(caller.org_id)
    assert cache.get(key) is None

    cache.put(cache.start(key), "third")
    cache.clear()
    assert cache.get(key) is None


def test_a_result_computed_while_its_org_changed_is_not_kept() -> None:
    cache = ResponseCache(Clock())
    caller = principal()
    key = cache.key(caller, ORG_HEALTH, None, {})
    assert key is not None and caller.org_id is not None

    started = cache.start(key)
    cache.org_changed(caller.org_id)
    cache.put(started, "already old")

    assert cache.get(key) is None


def test_callers_share_entries_only_with_the_same_role_org_and_request() -> None:
    cache = ResponseCache(Clock())
    org = uuid4()
    keys = {
        cache.key(principal("member", org), ORG_HEALTH, None, {}),
        cache.key(principal("coordinator", org), ORG_HEALTH, None, {}),
        cache.key(principal("member"), ORG_HEALTH, None, {}),
        cache.key(principal("member", org), ORG_HEALTH, None, {"x": 1}),
        cache.key(principal("member", org), ORG_HEALTH + " ", None, {}),
    }
    assert len(keys) == 5
    assert cache.key(principal("member", org), ORG_HEALTH, None, {}) in keys
    assert cache.key(principal("global_admin"), ORG_HEALTH, None, {}) is None
    assert cache.key(None, ORG_HEALTH, None, {}) is None


# -- through the API --------------------------------------------------------------


async def read(api: Api, as_: str) -> httpx.Response:
    return await api.client.post(
        "/graphql", json={"query": ORG_HEALTH}, headers={"Authorization": f"Bearer {as_}"}
    )


async def record(api: Api, org: UUID, latency_ms: int) -> dict[str, Any]:
    """A check result as the worker writes it: committed, then its event published."""
    pool = api.app.state.pool
    async with as_service(pool) as conn:
        (row,) = await health.record_results(
            conn,
            [
                CheckRecord(
                    org_id=org,
                    integration_type="http",
                    status="healthy",
                    latency_ms=latency_ms,
                    checked_at=datetime.now(UTC),
                    trigger="manual",
                )
            ],
        )
    event = {"orgId": str(org), "integrationType": "http", "latencyMs": row.latency_ms}
    redis: Redis = api.app.state.redis
    await publish_status_events(redis, [event])
    return event


@pytest.fixture
async def org(api: Api) -> UUID:
    async with as_service(api.app.state.pool) as conn:
        org_id = await make_org(conn)
        await make_integration(conn, org_id, "http", config={"url": "https://x.test/"})
    return org_id


async def test_a_repeated_read_is_served_from_the_cache(api: Api, org: UUID) -> None:
    member = token("member", org)

    first, second = await read(api, member), await read(api, member)

    assert "x-ihm-cache" not in first.headers
    assert second.headers["x-ihm-cache"] == "hit"
    assert second.json() == first.json()


async def test_a_check_result_voids_its_orgs_reads(api: Api, org: UUID) -> None:
    member = token("member", org)
    await read(api, member)

    await record(api, org, 123)
    services = api.app.state.services
    await services.broadcast.connected.wait()
    fresh = None
    for _ in range(40):  # the event crosses Redis to the API's listener (well within the TTL)
        response = await read(api, member)
        if "x-ihm-cache" not in response.headers:
            fresh = response.json()
            break
        await asyncio.sleep(0.02)

    assert fresh is not None
    assert fresh["data"]["orgHealth"][0]["latencyMs"] == 123


async def test_a_mutation_voids_the_reads_at_once(api: Api, org: UUID) -> None:
    admin = token("org_admin", org)
    before = (await read(api, admin)).json()["data"]["orgHealth"]

    changed = await api.gql(
        'mutation { upsertIntegration(input: {integrationType: "slack", '
        'config: {baseUrl: "https://slack.test/api"}}) { id } }',
        as_=admin,
    )
    after = await read(api, admin)

    assert "errors" not in changed, changed
    assert "x-ihm-cache" not in after.headers
    assert len(after.json()["data"]["orgHealth"]) == len(before) + 1


async def test_another_orgs_caller_never_gets_a_cached_answer(api: Api, org: UUID) -> None:
    await read(api, token("member", org))
    await read(api, token("member", org))
    async with as_service(api.app.state.pool) as conn:
        other = await make_org(conn)

    theirs = await read(api, token("member", other))

    assert "x-ihm-cache" not in theirs.headers
    assert theirs.json()["data"]["orgHealth"] == []


async def test_concurrent_misses_wait_for_one_execution() -> None:
    cache = ResponseCache(Clock())
    key = cache.key(principal(), ORG_HEALTH, None, {})
    assert key is not None
    runs = 0
    release = asyncio.Event()

    async def compute() -> str:
        nonlocal runs
        runs += 1
        await release.wait()
        return f"result {runs}"

    waiting = [asyncio.create_task(cache.through(key, compute, bool)) for _ in range(20)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*waiting)

    assert runs == 1
    assert {r for r, _ in results} == {"result 1"}
    assert sorted(shared for _, shared in results) == [False] + [True] * 19
    assert await cache.through(key, compute, bool) == ("result 1", True)


async def test_when_the_shared_execution_fails_each_waiter_runs_its_own() -> None:
    cache = ResponseCache(Clock())
    key = cache.key(principal(), ORG_HEALTH, None, {})
    assert key is not None
    release = asyncio.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()
            raise RuntimeError("the first one fails")
        return "fine"

    first = asyncio.create_task(cache.through(key, compute, bool))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(cache.through(key, compute, bool))
    await asyncio.sleep(0.01)
    release.set()

    with pytest.raises(RuntimeError):
        await first
    assert await second == ("fine", False)


async def test_a_cached_read_still_needs_a_valid_token(api: Api, org: UUID) -> None:
    await read(api, token("member", org))
    assert (await read(api, token("member", org))).headers["x-ihm-cache"] == "hit"

    late = mint_token(
        SECRET,
        role="member",
        org_id=org,
        sub="member-user",
        ttl_seconds=60,
        audience="ihm",
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    expired = await read(api, late)
    forged = await read(api, token("member", org) + "x")

    for refused in (expired, forged):
        assert "x-ihm-cache" not in refused.headers
        body = refused.json()
        assert body.get("data") is None or body["data"].get("orgHealth") is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_an_alert_change_voids_its_orgs_reads(api: Api, org: UUID) -> None:
    member = token("member", org)
    await read(api, member)
    assert (await read(api, member)).headers["x-ihm-cache"] == "hit"

    async with as_service(api.app.state.pool) as conn:
        alert, _ = await alerts.open_or_repeat(
            conn,
            org_id=org,
            integration_type="http",
            kind="UNREACHABLE",
            severity="CRITICAL",
            category="NETWORK",
            title="t",
            message="m",
            guidance="g",
            fingerprint="f",
            now=datetime.now(UTC),
        )
    await publish_alert_events(api.app.state.redis, [alert])

    for _ in range(40):  # the event crosses Redis to the API's listener (well within the TTL)
        if "x-ihm-cache" not in (await read(api, member)).headers:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the alert event did not void the cached read")


async def test_a_health_read_verifies_its_token_once_hit_or_miss(
    api: Api, org: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = api.app.state.services.verifier
    original = verifier.verify_header
    calls = 0

    async def counting(header: str | None) -> Principal:
        nonlocal calls
        calls += 1
        principal: Principal = await original(header)
        return principal

    monkeypatch.setattr(verifier, "verify_header", counting)
    member = token("member", org)

    miss, hit = await read(api, member), await read(api, member)

    assert "x-ihm-cache" not in miss.headers and hit.headers["x-ihm-cache"] == "hit"
    assert calls == 2

"""Benchmark: the API under load: `orgHealth` latency and throughput, and the time from a
status commit to a subscriber's receipt.

    .venv/bin/python -m tests.benchmarks.bench_api
    .venv/bin/python -m tests.benchmarks.bench_api --clients 50 --seconds 20 \\
        --subscribers 1000 --per-connection 10 --rounds 50 --interval 0.2

Real Postgres and Redis (the embedded servers, in a temporary directory) and the real
API (`ihm api`: uvicorn, IHM_ENV=production) in its own process on a free port. The
load (HTTP clients, WebSocket subscribers) runs in this process and in subscriber
processes; status changes are committed here as the worker commits them
(`db.health.record_results` in a transaction, then `publish_status_events`).
Prints figures; asserts nothing.

One org holds at most one integration per type (UNIQUE (org_id, integration_type))
and there are six types, so an org's `orgHealth` lists six integrations, not the
issue's fifty: the figures below are for six, each with full history and a day of
raw results. `--other-orgs` adds orgs with the same data, so the indexes are not
unrealistically small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
from redis.asyncio import Redis

from db import alerts, health, integration_types, integrations
from db.migrate import migrate
from db.pool import connect, create_pool
from db.scope import as_service
from embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from schema.app import MAX_SUBSCRIPTIONS_PER_CONNECTION, create_app
from tests.schema.conftest import SECRET, VAULT_KEY, api_settings, token
from tests.schema.ws_client import bearer, gql_socket
from workers.events import org_channel, publish_status_events, status_event

ORG_HEALTH = """{ orgHealth { integrationType status latencyMs
  history { status latencyMs checkedAt }
  trend { uptimeRatio buckets { checks } }
  activeAlerts { id } } }"""

STATUS_CHANGED = """subscription { statusChanged(includeUnchanged: true) {
  orgId integrationType previousStatus status changedAt
  health { status connectionState latencyMs checkedAt consecutiveFailures } } }"""

# Each round's results carry latency_ms = ROUND_BASE + round: the event says which
# round (and so which commit) it belongs to.
ROUND_BASE = 100_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread(values: list[float], scale: float = 1000.0) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 0.5) * scale:.1f} ms, p95 {percentile(values, 0.95) * scale:.1f}"
        f" ms, p99 {percentile(values, 0.99) * scale:.1f} ms, max {max(values) * scale:.1f} ms"
    )


def raise_open_file_limit(wanted: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / ticks, sum(values) / ticks


class CpuMeter:
    """CPU used by the API process, this process and the machine over a phase."""

    def __init__(self, api_pid: int) -> None:
        self.api_pid = api_pid
        self.api0 = process_cpu(api_pid)
        self.own0 = time.process_time()
        self.busy0, self.total0 = machine_cpu()
        self.wall0 = time.perf_counter()

    def report(self) -> str:
        wall = time.perf_counter() - self.wall0
        api = process_cpu(self.api_pid) - self.api0
        own = time.process_time() - self.own0
        busy, total = machine_cpu()
        busy, total = busy - self.busy0, total - self.total0
        cores = total / wall
        return (
            f"CPU over {wall:.1f} s: API process {api / wall:.2f} cores, load generator "
            f"{own / wall:.2f}, everything else (Postgres, Redis, subscriber processes) "
            f"{max(0.0, busy - api - own) / wall:.2f}; machine busy {busy / wall:.2f} of "
            f"{cores:.1f} cores"
        )


@contextlib.contextmanager
def profiled(api_pid: int, out: Path | None) -> Iterator[None]:
    """`py-spy record` of the API process over the block, when asked for and installed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if out is None or not Path(spy).exists():
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(api_pid), "--rate", "250", "--format", "raw"]
        + ["--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()
        print(f"  py-spy profile of the API process: {out}")


# -- seed -----------------------------------------------------------------------------


async def seed(conn: asyncpg.Connection, org: uuid.UUID, other_orgs: int) -> None:
    """`org` and `other_orgs` more, each with every integration type, full history (96
    rows), a current status and a day of raw results at the type's default interval."""
    orgs = [org] + [uuid.uuid4() for _ in range(other_orgs)]
    await conn.execute("SELECT ihm_ensure_result_partitions(current_date - 2, 4)")
    await conn.executemany(
        "INSERT INTO organizations (id, name) VALUES ($1, $2)",
        [(o, f"bench {n}") for n, o in enumerate(orgs)],
    )
    await conn.execute(
        "INSERT INTO integration_config (org_id, integration_type, check_interval_seconds, "
        "next_check_at) SELECT o, t.key, t.default_interval_seconds, now() + interval '1 day' "
        "FROM unnest($1::uuid[]) o, integration_types t",
        orgs,
    )
    await conn.execute(
        "INSERT INTO health_check_history (org_id, integration_type, status, latency_ms, "
        'checked_at, "trigger") SELECT c.org_id, c.integration_type, CASE WHEN g % 17 = 0 '
        "THEN 'degraded' ELSE 'healthy' END, 40 + g % 50, now() - make_interval(mins => 15 * g),"
        " 'scheduled' FROM integration_config c, generate_series(1, 96) g"
    )
    # The status rows' trigger adds one more history row each and prunes back to 96.
    await conn.execute(
        "INSERT INTO integration_health_status (org_id, integration_type, status, latency_ms, "
        "checked_at, status_since) SELECT org_id, integration_type, 'healthy', 42, now(), "
        "now() - interval '3 hours' FROM integration_config"
    )
    await conn.execute(
        "INSERT INTO health_check_results (org_id, integration_type, checked_at, status, "
        'latency_ms, "trigger") SELECT c.org_id, c.integration_type, now() - make_interval('
        "secs => t.default_interval_seconds * g), CASE WHEN g % 23 = 0 THEN 'unreachable' "
        "WHEN g % 17 = 0 THEN 'degraded' ELSE 'healthy' END, 40 + g % 50, 'scheduled' "
        "FROM integration_config c JOIN integration_types t ON t.key = c.integration_type, "
        "generate_series(0, 86400 / t.default_interval_seconds - 1) g"
    )
    # One firing alert, so activeAlerts is not empty for everyone.
    await alerts.open_or_repeat(
        conn,
        org_id=org,
        integration_type="http",
        kind="UNREACHABLE",
        severity="CRITICAL",
        category="NETWORK",
        title="http is unreachable",
        message="The service did not answer.",
        guidance="Check that it is up.",
        now=datetime.now(UTC),
    )


# -- the API process --------------------------------------------------------------------


def start_api(dsn: str, redis_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IHM_")}
    env.update(
        DATABASE_URL=dsn,
        REDIS_URL=redis_url,
        IHM_JWT_SECRET=SECRET,
        IHM_VAULT_KEYS=f"k1:{VAULT_KEY}",
        IHM_ENV="production",
    )
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "ihm", "api", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def wait_ready(base_url: str, api: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        for _ in range(300):
            if api.poll() is not None:
                raise RuntimeError("the API stopped at start: see its log")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("the API did not become ready")


# -- part 1: orgHealth ----------------------------------------------------------------


STATEMENT_METHODS = ("execute", "executemany", "fetch", "fetchval", "fetchrow")


@contextlib.contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every statement sent through any asyncpg connection of this process (pool
    connections delegate to these methods; transactions and the pool's reset on
    release use them too)."""
    seen: list[str] = []
    cls = asyncpg.connection.Connection
    originals = {name: getattr(cls, name) for name in STATEMENT_METHODS}

    def wrap(original: Any) -> Any:
        def counted(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            seen.append(" ".join(str(query).split()))
            return original(self, query, *args, **kwargs)

        return counted

    for name, original in originals.items():
        setattr(cls, name, wrap(original))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)


def statement_kind(sql: str) -> str:
    upper = sql.upper()
    if upper.startswith(("BEGIN", "COMMIT", "ROLLBACK")):
        return "transaction control (BEGIN/COMMIT)"
    if upper.startswith("SET LOCAL ROLE") or "SET_CONFIG('REQUEST.JWT.CLAIMS'" in upper:
        return "role and claims (SET LOCAL ROLE, set_config)"
    if "RESET ALL" in upper or "PG_ADVISORY_UNLOCK_ALL" in upper:
        return "pool reset on release"
    return "data queries"


async def count_statements(dsn: str, redis_url: str, member: str) -> None:
    """One orgHealth request, served in this process (same app, same database), with
    every statement counted."""
    app = create_app(api_settings(dsn, redis_url, IHM_ENV="production"))
    headers = {"Authorization": f"Bearer {member}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ihm") as client,
    ):
        (await client.post("/graphql", json={"query": distinct_query()}, headers=headers)).json()
        with counting_statements() as seen:
            response = await client.post(
                "/graphql", json={"query": distinct_query()}, headers=headers
            )
        body = response.json()
    integrations_listed = len((body.get("data") or {}).get("orgHealth") or [])
    kinds = Counter(statement_kind(s) for s in seen)
    print(
        f"  statements for one orgHealth request ({integrations_listed} integrations, history, "
        f"trend, activeAlerts): {len(seen)} round trips to Postgres, "
        f"{kinds['data queries']} of them data queries"
    )
    for kind, n in kinds.most_common():
        print(f"    {n:3d} {kind}")
    for sql in seen:
        if statement_kind(sql) == "data queries":
            print(f"        {sql[:110]}")


def distinct_query() -> str:
    """orgHealth under an operation name of its own: never answered from the API's cache."""
    return f"query Q{uuid.uuid4().hex}" + ORG_HEALTH


async def org_health_load(
    base_url: str,
    member: str,
    clients: int,
    seconds: float,
    cpu: CpuMeter | None,
    *,
    distinct: bool = False,
) -> None:
    """`distinct`: every request a different document (the cache never answers);
    otherwise every client repeats the same request, as polling dashboards do."""
    hits = 0
    headers = {"Authorization": f"Bearer {member}"}
    latencies: list[float] = []
    failures = 0
    sizes: list[int] = []

    async def client_loop(deadline: float) -> None:
        # aiohttp, not httpx: the load generator shares the machine's two cores with the
        # API, and httpx's client cost more CPU per request than the API's cached answer.
        nonlocal failures, hits
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(
            base_url=base_url, headers=headers, connector=connector
        ) as client:
            while time.perf_counter() < deadline:
                payload = {"query": distinct_query() if distinct else ORG_HEALTH}
                started = time.perf_counter()
                async with client.post("/graphql", json=payload) as response:
                    body = await response.read()
                latencies.append(time.perf_counter() - started)
                hits += response.headers.get("x-ihm-cache") == "hit"
                if response.status != 200 or b'"errors"' in body:
                    failures += 1
                sizes.append(len(body))

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(started + seconds) for _ in range(clients)))
    wall = time.perf_counter() - started
    print(
        f"  {clients} client(s), {wall:.1f} s: {len(latencies)} requests = "
        f"{len(latencies) / wall:.0f} req/s, {failures} failed, response "
        f"{percentile(sizes, 0.5) / 1024:.0f} KiB; latency {spread(latencies)}; "
        f"{hits / max(len(latencies), 1):.0%} answered from the cache"
    )
    if cpu is not None:
        api_cpu = process_cpu(cpu.api_pid) - cpu.api0
        print(f"  {cpu.report()}")
        print(f"  API CPU per request: {api_cpu / max(len(latencies), 1) * 1000:.2f} ms")


async def part_org_health(
    args: argparse.Namespace, dsn: str, redis_url: str, base_url: str, api_pid: int, org: uuid.UUID
) -> None:
    member = token("member", org, ttl=3600)
    print(
        "\n[1] orgHealth { integrationType status latencyMs history { status latencyMs "
        "checkedAt } trend { uptimeRatio buckets { checks } } activeAlerts { id } }"
    )
    print(
        "  one org has at most one integration per type (UNIQUE (org_id, integration_type)) "
        "and there are 6 types: 6 integrations, each 96 history rows, 96 trend buckets and a "
        "day of raw results (the issue's 50 integrations cannot exist in one org)"
    )
    await count_statements(dsn, redis_url, member)
    # Warm the API (prepared statements, pool connections), then one client alone: the
    # service time without queueing.
    await org_health_load(base_url, member, 1, 2, None, distinct=True)
    print("  uncached (every request a different document), one client alone:")
    meter = CpuMeter(api_pid)
    await org_health_load(base_url, member, 1, min(args.seconds, 5), meter, distinct=True)
    print(f"  uncached, {args.clients} concurrent clients (keep-alive, one connection each):")
    meter = CpuMeter(api_pid)
    await org_health_load(
        base_url, member, args.clients, min(args.seconds, 10), meter, distinct=True
    )
    print(
        f"  dashboards: {args.clients} concurrent clients repeating the same request "
        "(the API's 5-second cache, one execution for concurrent misses):"
    )
    profile = args.profile / "org_health.txt" if args.profile else None
    with profiled(api_pid, profile):
        meter = CpuMeter(api_pid)
        await org_health_load(base_url, member, args.clients, args.seconds, meter)


# -- part 2: status to subscriber -------------------------------------------------------


def subscriber_process(
    ws_url: str, members: list[str], connections: int, per_connection: int, pipe: Pipe, counter: Any
) -> None:
    """Runs in a process of its own: opens the sockets and subscriptions, reports ready,
    stamps every message on receipt (CLOCK_MONOTONIC is system-wide) until told to stop,
    then sends back (round, integration type, receipt time) per delivery. `counter`
    (shared memory) counts the events received so far, for the parent to watch."""
    raise_open_file_limit()
    asyncio.run(_subscribe_and_listen(ws_url, members, connections, per_connection, pipe, counter))


async def _subscribe_and_listen(
    ws_url: str, members: list[str], connections: int, per_connection: int, pipe: Pipe, counter: Any
) -> None:
    received: list[tuple[float, str]] = []
    async with contextlib.AsyncExitStack() as stack:
        sockets = []
        gate = asyncio.Semaphore(20)

        async def open_one(member: str) -> None:
            async with gate:
                socket = await stack.enter_async_context(gql_socket(ws_url))
                await socket.init(bearer(member))
                for _ in range(per_connection):
                    await socket.subscribe(STATUS_CHANGED)
                sockets.append(socket)

        await asyncio.gather(*(open_one(members[n % len(members)]) for n in range(connections)))
        closed = 0

        async def read(ws: Any) -> None:
            nonlocal closed
            try:
                while True:
                    raw = await ws.recv()
                    received.append((time.monotonic(), raw))
                    if '"next"' in raw[:40]:
                        counter.value += 1
                    elif '"ping"' in raw[:40]:
                        await ws.send('{"type":"pong"}')
            except Exception:
                closed += 1

        readers = [asyncio.create_task(read(s.ws)) for s in sockets]
        pipe.send(("ready", len(sockets) * per_connection))
        await asyncio.to_thread(pipe.recv)  # "stop"
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        deliveries: list[tuple[int, str, float]] = []
        others: Counter[str] = Counter()
        for at, raw in received:
            message = json.loads(raw)
            if message.get("type") != "next" or message["payload"].get("errors"):
                others[str(message.get("type"))] += 1
                continue
            event = message["payload"]["data"]["statusChanged"]
            deliveries.append(
                (event["health"]["latencyMs"] - ROUND_BASE, event["integrationType"], at)
            )
        pipe.send(("done", deliveries, dict(others), closed))
        for socket in sockets:
            socket.ws.close_timeout = 0.5


async def subscriptions_active(client: httpx.AsyncClient) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("ihm_subscriptions_active "):
            return float(line.split()[1])
    return 0.0


def watchers(subscribers: int, per_connection: int, orgs: int, org_index: int) -> int:
    """Subscriptions watching org `org_index` (connection c watches org c mod orgs)."""
    connections = subscribers // per_connection
    return per_connection * sum(1 for c in range(connections) if c % orgs == org_index)


async def part_subscriptions(
    args: argparse.Namespace,
    dsn: str,
    redis_url: str,
    base_url: str,
    api_pid: int,
    orgs: list[uuid.UUID],
) -> None:
    """Subscriptions spread over `orgs` (connection n watches org n mod len(orgs)); round
    n commits one result for org n mod len(orgs), so each event reaches that org's share
    of the subscriptions."""
    per_connection = min(args.per_connection, MAX_SUBSCRIPTIONS_PER_CONNECTION)
    connections = -(-args.subscribers // per_connection)
    subscribers = connections * per_connection
    procs = max(1, min(args.subscriber_processes, connections))
    print(
        f"\n[2] statusChanged(includeUnchanged: true): {subscribers} subscriptions on "
        f"{connections} WebSocket connections x {per_connection}, held by {procs} "
        f"subscriber process(es); {args.rounds} rounds, one every {args.interval * 1000:.0f} ms,"
        f" each committing {args.changes} integration result(s) (a status flip each) for "
        + ("the one org" if len(orgs) == 1 else f"the next of {len(orgs)} orgs, in turn")
    )
    members = [token("member", org, ttl=3600) for org in orgs]
    by_connection = [members[c % len(members)] for c in range(connections)]
    org = orgs[0]
    ws_url = base_url.replace("http://", "ws://") + "/graphql"
    context = multiprocessing.get_context("spawn")
    children: list[tuple[Any, Pipe]] = []
    counters: list[Any] = []
    first = 0
    for n in range(procs):
        share = connections // procs + (1 if n < connections % procs else 0)
        mine, first = by_connection[first : first + share], first + share
        ours, theirs = context.Pipe()
        counter = context.Value("q", 0, lock=False)  # one writer: the child
        child = context.Process(
            target=subscriber_process,
            args=(
                ws_url,
                mine,
                share,
                per_connection,
                theirs,
                counter,
            ),
            daemon=True,
        )
        child.start()
        children.append((child, ours))
        counters.append(counter)

    redis = Redis.from_url(redis_url)
    pool = await create_pool(dsn, max_size=2)
    try:
        opened = time.perf_counter()
        ready = 0
        for _, pipe in children:
            message = await asyncio.wait_for(asyncio.to_thread(pipe.recv), 180)
            ready += message[1]
        channel = org_channel(org)
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            async with asyncio.timeout(60):
                while True:
                    counts = await redis.pubsub_numsub(channel)
                    listening = bool(counts) and counts[0][1] > 0
                    active = await subscriptions_active(client)
                    if listening and active >= subscribers:
                        break
                    await asyncio.sleep(0.1)
        print(
            f"  {ready} subscriptions acknowledged and {active:.0f} streams live in "
            f"{time.perf_counter() - opened:.1f} s; the API listens on {channel}"
        )
        await asyncio.sleep(1)

        async with pool.acquire() as conn:
            configured = {
                (o, i.integration_type): i
                for o in orgs
                for i in await integrations.list_for_org(conn, o)
            }
            names = {t.key: t.display_name for t in await integration_types.list_all(conn)}
        kinds = sorted({kind for _, kind in configured})[: args.changes]
        commits: dict[int, float] = {}
        publish: list[float] = []
        profile = args.profile / "subscriptions.txt" if args.profile else None
        with profiled(api_pid, profile):
            meter = CpuMeter(api_pid)
            start = time.monotonic()
            for n in range(args.rounds):
                await asyncio.sleep(max(0.0, start + n * args.interval - time.monotonic()))
                now = datetime.now(UTC)
                target = orgs[n % len(orgs)]
                flip = "degraded" if (n // len(orgs)) % 2 == 0 else "healthy"
                records = [
                    health.CheckRecord(target, kind, flip, ROUND_BASE + n, now) for kind in kinds
                ]
                async with as_service(pool) as conn:
                    rows = await health.record_results(conn, records)
                committed = time.monotonic()
                events = [
                    status_event(
                        row,
                        configured[(target, row.integration_type)],
                        names[row.integration_type],
                    )
                    for row in rows
                ]
                await publish_status_events(redis, events)
                publish.append(time.monotonic() - committed)
                commits[n] = committed
            # Until every event arrived, or none arrived for `grace` seconds.
            expected = len(kinds) * sum(
                watchers(subscribers, per_connection, len(orgs), n % len(orgs))
                for n in range(args.rounds)
            )
            last_count, last_progress = -1, time.monotonic()
            while time.monotonic() - last_progress < args.grace:
                count = sum(c.value for c in counters)
                if count >= expected:
                    break
                if count != last_count:
                    last_count, last_progress = count, time.monotonic()
                await asyncio.sleep(0.05)
            cpu_report = meter.report()
            api_cpu = process_cpu(api_pid) - meter.api0

        for _, pipe in children:
            pipe.send("stop")
        deliveries: list[tuple[int, str, float]] = []
        others: Counter[str] = Counter()
        dropped_sockets = 0
        for _, pipe in children:
            _, got, other, closed = await asyncio.wait_for(asyncio.to_thread(pipe.recv), 120)
            deliveries.extend(got)
            others.update(other)
            dropped_sockets += closed
    finally:
        await pool.close()
        await redis.aclose()
        for child, _ in children:
            child.join(30)
            if child.is_alive():
                child.terminate()
                child.join()

    latencies = [at - commits[n] for n, _, at in deliveries if n in commits]
    last_per_round: dict[int, float] = {}
    first_per_round: dict[int, float] = {}
    for n, _, at in deliveries:
        if n in commits:
            last_per_round[n] = max(last_per_round.get(n, 0.0), at - commits[n])
            first_per_round[n] = min(first_per_round.get(n, 1e9), at - commits[n])
    final = max((at for _, _, at in deliveries), default=commits[args.rounds - 1])
    drained = final - commits[args.rounds - 1]
    print(
        f"  delivered {len(latencies)} of {expected} expected events ({len(kinds)} per round "
        f"per subscriber); the last arrived {drained * 1000:.0f} ms after the last commit"
    )
    if others or dropped_sockets:
        print(f"  other messages {dict(others)}, sockets closed early {dropped_sockets}")
    print(f"  commit -> subscriber receipt, all deliveries: {spread(latencies)}")
    print(
        f"  per round, first subscriber: {spread(list(first_per_round.values()))}; "
        f"last subscriber: {spread(list(last_per_round.values()))}"
    )
    print(f"  commit -> PUBLISH returned (Redis round trip): {spread(publish)}")
    print(f"  {cpu_report}")
    print(
        f"  API CPU per delivered event: {api_cpu / max(len(latencies), 1) * 1000:.3f} ms; "
        f"offered load {expected / (args.rounds * args.interval):.0f} deliveries/s"
    )


# -- main ---------------------------------------------------------------------------------


async def background_load(seconds: float = 3.0) -> float:
    """Cores busy on the machine before we start (other work sharing it)."""
    busy0, _ = machine_cpu()
    await asyncio.sleep(seconds)
    return (machine_cpu()[0] - busy0) / seconds


async def bench(args: argparse.Namespace) -> None:
    raise_open_file_limit()
    print(
        f"machine: {os.cpu_count()} cores; busy before the benchmark (other work): "
        f"{await background_load():.2f} cores"
    )
    scratch = Path(tempfile.mkdtemp(prefix="ihm-bench-"))
    os.chmod(scratch, 0o755)
    pg = EmbeddedPostgres(scratch / "pg", free_port(), settings={"shared_buffers": "256MB"})
    rd = EmbeddedRedis(scratch / "redis", free_port(), persistent=False)
    pg.start()
    rd.start()
    api: subprocess.Popen[bytes] | None = None
    log = args.api_log or scratch / "api.log"
    try:
        pg.create_database("bench")
        dsn = pg.dsn("bench")
        conn = await connect(dsn)
        await migrate(conn)
        org = uuid.uuid4()
        started = time.perf_counter()
        async with conn.transaction():
            await seed(conn, org, args.other_orgs)
        await conn.execute("ANALYZE")
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM integration_config) AS integrations, "
            "(SELECT count(*) FROM health_check_history) AS history, "
            "(SELECT count(*) FROM health_check_results) AS results"
        )
        spread_over = [org] + [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM organizations WHERE id <> $1 ORDER BY id LIMIT $2",
                org,
                max(0, args.orgs - 1),
            )
        ]
        await conn.close()
        print(
            f"seeded {args.other_orgs + 1} orgs: {counts['integrations']} integrations, "
            f"{counts['history']} history rows, {counts['results']} raw results in "
            f"{time.perf_counter() - started:.1f} s"
        )

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        api = start_api(dsn, rd.url(), port, log)
        await wait_ready(base_url, api)
        print(f"API: `ihm api` (uvicorn, IHM_ENV=production) pid {api.pid} on {base_url}")
        if args.part in ("all", "query"):
            await part_org_health(args, dsn, rd.url(), base_url, api.pid, org)
        if args.part in ("all", "subscribe"):
            await part_subscriptions(args, dsn, rd.url(), base_url, api.pid, spread_over)
        problems = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if '"level": "error"' in line or "Traceback" in line
        ]
        kept = f" (kept in {log})" if args.api_log else ""
        print(f"\nAPI log: {len(problems)} error line(s){kept}")
        for line in problems[:5]:
            print(f"  {line[:200]}")
    finally:
        if api is not None:
            api.terminate()
            try:
                api.wait(15)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()
        rd.stop()
        pg.stop()
        subprocess.run(["rm", "-rf", str(scratch)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "query", "subscribe"), default="all")
    parser.add_argument("--other-orgs", type=int, default=200, help="orgs seeded besides ours")
    parser.add_argument("--clients", type=int, default=50, help="concurrent orgHealth clients")
    parser.add_argument("--seconds", type=float, default=20, help="orgHealth load duration")
    parser.add_argument("--subscribers", type=int, default=1000, help="subscriptions to open")
    parser.add_argument(
        "--per-connection",
        type=int,
        default=10,
        help=f"subscriptions per WebSocket (the server caps {MAX_SUBSCRIPTIONS_PER_CONNECTION})",
    )
    parser.add_argument(
        "--subscriber-processes", type=int, default=2, help="processes holding the sockets"
    )
    parser.add_argument(
        "--orgs",
        type=int,
        default=1,
        help="orgs the subscriptions are spread over (each commit goes to one of them)",
    )
    parser.add_argument("--rounds", type=int, default=50, help="status commits")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between commits")
    parser.add_argument(
        "--changes", type=int, default=1, help="integrations whose status each commit changes"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=5,
        help="after the last commit, stop waiting when no event arrived for this long",
    )
    parser.add_argument("--api-log", type=Path, default=None, help="keep the API's log here")
    parser.add_argument(
        "--profile", type=Path, default=None, help="directory for py-spy profiles of the API"
    )
    args = parser.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()

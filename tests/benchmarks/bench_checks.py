"""Benchmark: checks per second end to end, CPU per check, upsert and prune times.

    .venv/bin/python -m tests.benchmarks.bench_checks --integrations 1000
    .venv/bin/python -m tests.benchmarks.bench_checks --integrations 10000

Real Postgres and Redis (the embedded servers, in a temporary directory) and
the provider simulator in its own process; the runner and the database
writes run here, as in a worker. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from redis.asyncio import Redis

from db import health, results, trends
from db.pool import create_pool
from db.scope import as_service
from db.vault import Vault
from tests.benchmarks.stack import TYPES, VAULT_KEY, local_stack, percentile, seed_orgs
from workers.checks.context import CheckContext, TokenCache
from workers.credential_source import VaultCredentialSource
from workers.main import USER_AGENT
from workers.runner import Runner, run_health_checks


async def bench(integrations: int, concurrency: int) -> None:
    orgs = max(1, integrations // len(TYPES))
    async with local_stack() as stack:
        pool = await create_pool(stack.dsn, max_size=40)
        vault = Vault([("k1", VAULT_KEY)])
        simulator_url = stack.simulator_url
        t0 = time.perf_counter()
        async with as_service(pool) as conn:
            org_ids = await seed_orgs(conn, vault, simulator_url, orgs)
        print(
            f"seeded {orgs} orgs x {len(TYPES)} = {orgs * len(TYPES)} integrations "
            f"in {time.perf_counter() - t0:.1f} s"
        )

        redis = Redis.from_url(stack.redis_url)
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(10, connect=5),
            limits=httpx.Limits(max_connections=500, max_keepalive_connections=200),
            headers={"User-Agent": USER_AGENT},
        )
        runner = Runner(
            pool=pool,
            checks=CheckContext(http, VaultCredentialSource(pool, vault), TokenCache()),
            redis=redis,
            timeout_seconds=10,
        )
        gate = asyncio.Semaphore(concurrency)
        org_seconds: list[float] = []

        async def one(org: uuid.UUID) -> int:
            async with gate:
                started = time.perf_counter()
                outcomes = await run_health_checks(runner, org, trigger="manual")
                org_seconds.append(time.perf_counter() - started)
                return sum(o.result.status.value == "healthy" for o in outcomes)

        for label in ("cold (token fetches, new connections)", "warm"):
            org_seconds.clear()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            healthy = sum(await asyncio.gather(*(one(o) for o in org_ids)))
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            checks = orgs * len(TYPES)
            print(
                f"[{label}] {checks} checks ({healthy} healthy) in {wall:.2f} s: "
                f"{checks / wall:.0f} checks/s, {cpu / checks * 1000:.2f} ms CPU per check "
                f"(this process), org run p50 {percentile(org_seconds, 0.5) * 1000:.0f} ms "
                f"p95 {percentile(org_seconds, 0.95) * 1000:.0f} ms"
            )

        # One org's results, written as the runner does (one statement, history by trigger).
        org = org_ids[0]
        upserts: list[float] = []
        base = datetime.now(UTC)
        for n in range(200):
            records = [
                health.CheckRecord(org, kind, "healthy", 40 + n, base + timedelta(seconds=n))
                for kind in TYPES
            ]
            async with as_service(pool) as conn:
                t = time.perf_counter()
                await health.record_results(conn, records)
                upserts.append(time.perf_counter() - t)
        print(
            f"upsert one org's results ({len(TYPES)} rows + history + log), history full: "
            f"p50 {percentile(upserts, 0.5) * 1000:.2f} ms, p95 "
            f"{percentile(upserts, 0.95) * 1000:.2f} ms (bound 500 ms)"
        )

        # History of every integration filled to the cap, then the prune alone.
        async with pool.acquire() as conn:
            t = time.perf_counter()
            await conn.execute(
                "INSERT INTO health_check_history (org_id, integration_type, status, latency_ms, "
                "checked_at, \"trigger\") SELECT c.org_id, c.integration_type, 'healthy', 40, "
                "now() - make_interval(mins => 15 * g), 'scheduled' FROM integration_config c, "
                "generate_series(1, 96) g"
            )
            rows = await conn.fetchval("SELECT count(*) FROM health_check_history")
            await conn.execute("ANALYZE health_check_history")
            print(f"history filled to {rows} rows in {time.perf_counter() - t:.1f} s")
            prunes: list[float] = []
            for n in range(200):
                org = org_ids[n % len(org_ids)]
                async with conn.transaction():
                    t = time.perf_counter()
                    await conn.execute(
                        "DELETE FROM health_check_history WHERE org_id = $1 AND "
                        "integration_type = 'slack' AND (checked_at, id) < (SELECT checked_at, id "
                        "FROM health_check_history WHERE org_id = $1 AND integration_type = "
                        "'slack' ORDER BY checked_at DESC, id DESC OFFSET 95 LIMIT 1)",
                        org,
                    )
                    prunes.append(time.perf_counter() - t)
            print(
                f"prune one integration's history ({rows} rows in the table): p50 "
                f"{percentile(prunes, 0.5) * 1000:.2f} ms, p95 "
                f"{percentile(prunes, 0.95) * 1000:.2f} ms (bound 200 ms)"
            )
            print(
                f"mean upsert {statistics.mean(upserts) * 1000:.2f} ms, "
                f"mean prune {statistics.mean(prunes) * 1000:.2f} ms"
            )

        # 30 days of results every 15 minutes for one org's integrations, then the trends.
        org = org_ids[0]
        async with pool.acquire() as conn:
            first_day = (datetime.now(UTC) - timedelta(days=31)).date()
            await results.ensure_partitions(conn, first_day, 33)
            await conn.execute(
                "INSERT INTO health_check_results (org_id, integration_type, checked_at, status, "
                'latency_ms, "trigger") SELECT $1, t, now() - make_interval(mins => 15 * g), '
                "CASE WHEN g % 17 = 0 THEN 'unreachable' ELSE 'healthy' END, 40 + g % 50, "
                "'scheduled' FROM unnest($2::text[]) t, generate_series(1, 2880) g",
                org,
                list(TYPES),
            )
            await conn.execute("ANALYZE health_check_results")
            for window in ("LAST_24_HOURS", "LAST_7_DAYS", "LAST_30_DAYS"):
                timings = []
                for _ in range(30):
                    t = time.perf_counter()
                    await trends.trends(conn, org, list(TYPES), window, now=datetime.now(UTC))
                    timings.append(time.perf_counter() - t)
                print(
                    f"trend {window} for {len(TYPES)} integrations (one query): p50 "
                    f"{percentile(timings, 0.5) * 1000:.1f} ms, p95 "
                    f"{percentile(timings, 0.95) * 1000:.1f} ms"
                )
        await http.aclose()
        await redis.aclose()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--integrations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50, help="orgs checked at once")
    args = parser.parse_args()
    asyncio.run(bench(args.integrations, args.concurrency))


if __name__ == "__main__":
    main()

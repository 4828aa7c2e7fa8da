"""Benchmark: the whole pipeline with N integrations due at once.

    .venv/bin/python -m tests.benchmarks.bench_scheduler --integrations 10000 --workers 1

Everything local and real: Postgres, Redis, the simulator and `ihm worker`
processes (the scheduler tick claims, enqueues per org, workers check and
write). Prints checks per second from the first tick to the last committed
result, CPU seconds per check of the worker processes, and scheduler drift.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from db import credentials
from db.demo import demo_integrations
from db.migrate import migrate
from db.pool import connect, create_pool
from db.scope import as_service
from db.vault import Vault
from embedded import EmbeddedPostgres, EmbeddedRedis, free_port

KEY = b"b" * 32


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


async def seed(dsn: str, simulator_url: str, integrations: int) -> int:
    pool = await create_pool(dsn, max_size=4)
    vault = Vault([("k1", KEY)])
    orgs = max(1, integrations // 6)
    async with as_service(pool) as conn:
        for _ in range(orgs):
            org = uuid.uuid4()
            await conn.execute("INSERT INTO organizations (id) VALUES ($1)", org)
            for kind, (config, secret) in demo_integrations(simulator_url).items():
                config = {
                    k: (v.replace("/demo-", f"/{org.hex[:8]}-") if isinstance(v, str) else v)
                    for k, v in config.items()
                }
                integration_id = await conn.fetchval(
                    "INSERT INTO integration_config (org_id, integration_type, "
                    "check_interval_seconds, config, next_check_at) "
                    "VALUES ($1, $2, 900, $3, now() + interval '1 hour') RETURNING id",
                    org,
                    kind,
                    config,
                )
                if secret:
                    await credentials.store(
                        conn, vault, org_id=org, integration_id=integration_id, payload=secret
                    )
    await pool.close()
    return orgs * 6


async def bench(integrations: int, workers: int, log_path: str | None) -> None:
    log = open(log_path, "w") if log_path else None  # noqa: SIM115 - the workers write it
    scratch = Path(tempfile.mkdtemp(prefix="ihm-bench-"))
    os.chmod(scratch, 0o755)
    pg = EmbeddedPostgres(scratch / "pg", free_port(), settings={"shared_buffers": "256MB"})
    rd = EmbeddedRedis(scratch / "redis", free_port(), persistent=False)
    sim_port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "ihm", "simulator", "--port", str(sim_port)],
        stdout=subprocess.DEVNULL,
    )
    pg.start()
    rd.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        pg.create_database("bench")
        dsn = pg.dsn("bench")
        conn = await connect(dsn)
        await migrate(conn)
        await conn.close()
        simulator_url = f"http://127.0.0.1:{sim_port}"
        for _ in range(100):
            try:
                httpx.get(f"{simulator_url}/_control/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        total = await seed(dsn, simulator_url, integrations)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IHM_")}
        env.update(
            DATABASE_URL=dsn,
            REDIS_URL=rd.url(),
            IHM_JWT_SECRET="x" * 40,
            IHM_VAULT_KEYS="k1:" + base64.b64encode(KEY).decode(),
            IHM_ENV="production",
            IHM_SCHEDULER_TICK_SECONDS="5",
        )
        for _ in range(workers):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "ihm", "worker"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log or subprocess.DEVNULL,
                )
            )
        await asyncio.sleep(3)  # workers up
        cpu0 = sum(cpu_seconds(p.pid) for p in processes)
        sim0 = cpu_seconds(simulator.pid)
        probe = await connect(dsn)
        await probe.execute("UPDATE integration_config SET next_check_at = now()")
        started = time.perf_counter()
        done = 0
        while time.perf_counter() - started < 600:
            done = await probe.fetchval("SELECT count(*) FROM check_slots")
            if done >= total:
                break
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - started
        cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu0
        sim_cpu = cpu_seconds(simulator.pid) - sim0
        drift = await probe.fetchrow(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50, max(d) AS max "
            "FROM (SELECT extract(epoch FROM started_at - scheduled_for) AS d "
            "FROM health_check_results WHERE scheduled_for IS NOT NULL) x"
        )
        statuses = await probe.fetch(
            "SELECT status, count(*) FROM integration_health_status GROUP BY 1 ORDER BY 1"
        )
        await probe.close()
        print(
            f"{workers} worker(s), {total} integrations due at once: {done} checks written in "
            f"{wall:.1f} s = {done / wall:.0f} checks/s; worker CPU {cpu:.1f} s = "
            f"{cpu / max(done, 1) * 1000:.2f} ms per check; drift p50 {drift['p50']:.1f} s, "
            f"max {drift['max']:.1f} s; simulator CPU {sim_cpu:.1f} s; "
            f"statuses {[tuple(s) for s in statuses]}"
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        simulator.terminate()
        simulator.wait()
        rd.stop()
        pg.stop()
        subprocess.run(["rm", "-rf", str(scratch)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--integrations", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log", default=None, help="write the workers' logs to this file")
    args = parser.parse_args()
    asyncio.run(bench(args.integrations, args.workers, args.log))


if __name__ == "__main__":
    main()

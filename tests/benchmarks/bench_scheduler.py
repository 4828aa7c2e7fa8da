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
import time
from datetime import UTC, datetime, timedelta

from db.pool import connect, create_pool
from db.scope import as_service
from db.vault import Vault
from tests.benchmarks.stack import (
    TYPES,
    VAULT_KEY,
    cpu_seconds,
    local_stack,
    machine_busy,
    seed_orgs,
)


async def bench(integrations: int, workers: int, log_path: str | None, profile: str | None) -> None:
    log = open(log_path, "w") if log_path else None  # noqa: SIM115 - the workers write it
    async with local_stack() as stack:
        dsn = stack.dsn
        pool = await create_pool(dsn, max_size=4)
        async with as_service(pool) as conn:
            orgs = await seed_orgs(
                conn,
                Vault([("k1", VAULT_KEY)]),
                stack.simulator_url,
                max(1, integrations // len(TYPES)),
                next_check_at=datetime.now(UTC) + timedelta(hours=1),
            )
        await pool.close()
        total = len(orgs) * len(TYPES)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("IHM_")}
            env.update(
                DATABASE_URL=dsn,
                REDIS_URL=stack.redis_url,
                IHM_JWT_SECRET="x" * 40,
                IHM_VAULT_KEYS="k1:" + base64.b64encode(VAULT_KEY).decode(),
                IHM_ENV="production",
                IHM_SCHEDULER_TICK_SECONDS="5",
            )
            for n in range(workers):
                # --profile: each worker under cProfile, stats written when it stops.
                runner = ["-m", "cProfile", "-o", f"{profile}.{n}"] if profile else ["-m"]
                command = [sys.executable, *runner, *(["ihm.py"] if profile else ["ihm"])]
                processes.append(
                    subprocess.Popen(
                        [*command, "worker"],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=log or subprocess.DEVNULL,
                    )
                )
            await asyncio.sleep(3)  # workers up
            cpu0 = sum(cpu_seconds(p.pid) for p in processes)
            sim0 = cpu_seconds(stack.simulator_pid)
            busy0 = machine_busy()
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
            sim_cpu = cpu_seconds(stack.simulator_pid) - sim0
            busy = machine_busy() - busy0
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
                f"max {drift['max']:.1f} s; simulator CPU {sim_cpu:.1f} s; machine busy "
                f"{busy / wall:.2f} of {os.cpu_count()} cores (Postgres, Redis and the rest: "
                f"{(busy - cpu - sim_cpu) / wall:.2f}); "
                f"statuses {[tuple(s) for s in statuses]}"
            )
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--integrations", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log", default=None, help="write the workers' logs to this file")
    parser.add_argument("--profile", default=None, help="cProfile the workers into PREFIX.N")
    args = parser.parse_args()
    asyncio.run(bench(args.integrations, args.workers, args.log, args.profile))


if __name__ == "__main__":
    main()

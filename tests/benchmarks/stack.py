"""What the benchmarks share: a throw-away local stack and demo-shaped seed data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx

from db import credentials
from db.demo import demo_integrations
from db.migrate import migrate
from db.pool import connect
from db.vault import Vault
from embedded import EmbeddedPostgres, EmbeddedRedis, free_port

VAULT_KEY = b"b" * 32
TYPES = ("http", "slack", "gmail", "google_calendar", "xledger", "dynamics365")


@dataclass(frozen=True)
class Stack:
    dsn: str
    redis_url: str
    simulator_url: str
    simulator_pid: int


@asynccontextmanager
async def local_stack() -> AsyncIterator[Stack]:
    """Postgres (migrated), Redis and the simulator in its own process; all removed after."""
    scratch = Path(tempfile.mkdtemp(prefix="ihm-bench-"))
    os.chmod(scratch, 0o755)  # the Postgres user must enter it
    pg = EmbeddedPostgres(scratch / "pg", free_port(), settings={"shared_buffers": "256MB"})
    rd = EmbeddedRedis(scratch / "redis", free_port(), persistent=False)
    sim_port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "ihm", "simulator", "--port", str(sim_port)],
        stdout=subprocess.DEVNULL,
    )
    pg.start()
    rd.start()
    try:
        pg.create_database("bench")
        conn = await connect(pg.dsn("bench"))
        await migrate(conn)
        await conn.close()
        simulator_url = f"http://127.0.0.1:{sim_port}"
        async with httpx.AsyncClient(timeout=1) as client:
            for _ in range(100):
                try:
                    await client.get(f"{simulator_url}/_control/healthz")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        yield Stack(pg.dsn("bench"), rd.url(), simulator_url, simulator.pid)
    finally:
        simulator.terminate()
        simulator.wait()
        rd.stop()
        pg.stop()
        subprocess.run(["rm", "-rf", str(scratch)], check=False)


async def seed_orgs(
    conn: asyncpg.Connection,
    vault: Vault,
    simulator_url: str,
    orgs: int,
    *,
    next_check_at: datetime | None = None,
) -> list[uuid.UUID]:
    """`orgs` orgs with all six providers on the simulator (a key per org), credentials
    sealed; due at `next_check_at` (default: now)."""
    ids = [uuid.uuid4() for _ in range(orgs)]
    await conn.executemany(
        "INSERT INTO organizations (id, name) VALUES ($1, $2)",
        [(o, f"bench {n}") for n, o in enumerate(ids)],
    )
    for org in ids:
        for kind, (config, secret) in demo_integrations(simulator_url).items():
            config = {
                k: (v.replace("/demo-", f"/{org.hex[:8]}-") if isinstance(v, str) else v)
                for k, v in config.items()
            }
            integration_id = await conn.fetchval(
                "INSERT INTO integration_config (org_id, integration_type, "
                "check_interval_seconds, config, next_check_at) "
                "VALUES ($1, $2, 900, $3, coalesce($4, now())) RETURNING id",
                org,
                kind,
                config,
                next_check_at,
            )
            if secret:
                await credentials.store(
                    conn, vault, org_id=org, integration_id=integration_id, payload=secret
                )
    return ids


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")

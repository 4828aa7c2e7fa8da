"""`ihm up` end to end: the real command, real Postgres and Redis, real children."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from db.demo import DEMO_ORG_ID
from embedded import free_port, port_is_open

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 120
DEMO_TYPES = ("http", "slack", "gmail", "google_calendar", "xledger", "dynamics365")


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Under /tmp with 0755: the unprivileged Postgres user must reach ./.ihm.
    path = Path(tempfile.mkdtemp(prefix="ihm-up-"))
    os.chmod(path, 0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _start(workdir: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env = {k: v for k, v in env.items() if not k.startswith("IHM_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "ihm", "up", "--port", str(ports["api"])]
        + ["--pg-port", str(ports["pg"]), "--redis-port", str(ports["redis"])]
        + ["--simulator-port", str(ports["simulator"])],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_banner(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail("ihm up exited before it was ready:\n" + "".join(seen))
        seen.append(line)
        if "Ctrl-C stops everything" in line:
            return seen
    pytest.fail("ihm up was not ready in time:\n" + "".join(seen))


async def _demo_statuses(workdir: Path, pg_port: int) -> dict[str, str]:
    password = (workdir / ".ihm" / "pg-password").read_text().strip()
    conn = await asyncpg.connect(f"postgresql://ihm:{password}@127.0.0.1:{pg_port}/ihm")
    try:
        for _ in range(150):
            rows = await conn.fetch(
                "SELECT integration_type, status FROM integration_health_status WHERE org_id = $1",
                DEMO_ORG_ID,
            )
            if len(rows) == len(DEMO_TYPES):
                return {r["integration_type"]: r["status"] for r in rows}
            await asyncio.sleep(0.2)
        return {r["integration_type"]: r["status"] for r in rows}
    finally:
        await conn.close()


def _stop(process: subprocess.Popen[str], sig: int) -> str:
    process.send_signal(sig)
    out, _ = process.communicate(timeout=60)
    return out


def test_ihm_up_serves_readiness_then_stops_everything_it_started(workdir: Path) -> None:
    ports = {"api": free_port(), "pg": free_port(), "redis": free_port(), "simulator": free_port()}
    process = _start(workdir, ports)
    try:
        banner = "".join(_wait_for_banner(process))
        ready = httpx.get(f"http://127.0.0.1:{ports['api']}/readyz", timeout=5)
        alive = httpx.get(f"http://127.0.0.1:{ports['api']}/healthz", timeout=5)
        checked = asyncio.run(_demo_statuses(workdir, ports["pg"]))
    finally:
        rest = _stop(process, signal.SIGINT)

    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}
    assert alive.status_code == 200
    # The demo scenario's first step: every provider answers, and the worker checked them all.
    assert checked == dict.fromkeys(DEMO_TYPES, "healthy")
    for role in ("member", "coordinator", "org_admin", "service", "global_admin"):
        assert f"    {role}" in banner
    assert process.returncode == 0, rest
    assert "stopped" in rest
    assert not any(port_is_open(p) for p in ports.values())


def test_ihm_up_reuses_its_database_and_secrets_on_the_next_run(workdir: Path) -> None:
    ports = {"api": free_port(), "pg": free_port(), "redis": free_port(), "simulator": free_port()}
    first = _start(workdir, ports)
    try:
        _wait_for_banner(first)
    finally:
        _stop(first, signal.SIGTERM)
    secrets_before = (workdir / ".ihm" / "secrets.env").read_text()
    cluster_id = (workdir / ".ihm" / "pg" / "global" / "pg_control").stat().st_ino

    second = _start(workdir, ports)
    try:
        _wait_for_banner(second)
        ready = httpx.get(f"http://127.0.0.1:{ports['api']}/readyz", timeout=5)
    finally:
        _stop(second, signal.SIGTERM)

    assert ready.status_code == 200
    assert second.returncode == 0
    assert (workdir / ".ihm" / "secrets.env").read_text() == secrets_before
    assert (workdir / ".ihm" / "pg" / "global" / "pg_control").stat().st_ino == cluster_id

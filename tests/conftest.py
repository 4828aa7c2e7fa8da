"""Real Postgres and Redis for the whole session; an isolated database per test.

The servers are the same `embedded` classes `ihm up` runs. Tests get a fresh
database cloned from a template migrated once (fast), and a flushed Redis.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from db.migrate import migrate
from db.pool import connect, create_pool
from embedded import EmbeddedPostgres, EmbeddedRedis, free_port

TEMPLATE_DB = "ihm_template"
_counter = itertools.count()


@dataclass(frozen=True)
class PostgresServer:
    server: EmbeddedPostgres

    def dsn(self, database: str) -> str:
        return self.server.dsn(database)


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    # Under /tmp, not pytest's 0700 tmp dirs: the unprivileged Postgres user must enter it.
    path = Path(tempfile.mkdtemp(prefix="ihm-tests-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(scratch_dir: Path) -> Iterator[PostgresServer]:
    server = EmbeddedPostgres(
        scratch_dir / "pg",
        free_port(),
        # Durability is not under test here; speed is welcome.
        settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    server.start()
    server.create_database(TEMPLATE_DB)
    yield PostgresServer(server)
    server.stop()


@pytest.fixture(scope="session")
def migrated_template(postgres_server: PostgresServer) -> str:
    import asyncio

    async def run() -> None:
        conn = await connect(postgres_server.dsn(TEMPLATE_DB))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    return TEMPLATE_DB


async def _create_database(server: PostgresServer, template: str | None) -> str:
    name = f"test_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(server.dsn("postgres"))
    try:
        clause = f" TEMPLATE {template}" if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    return name


async def _drop_database(server: PostgresServer, name: str) -> None:
    admin = await asyncpg.connect(server.dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def empty_dsn(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A database with nothing in it (for migration tests)."""
    name = await _create_database(postgres_server, None)
    yield postgres_server.dsn(name)
    await _drop_database(postgres_server, name)


@pytest.fixture
async def dsn(postgres_server: PostgresServer, migrated_template: str) -> AsyncIterator[str]:
    """A migrated database of the test's own."""
    name = await _create_database(postgres_server, migrated_template)
    yield postgres_server.dsn(name)
    await _drop_database(postgres_server, name)


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(dsn, max_size=5)
    yield p
    await p.close()


@pytest.fixture(scope="session")
def redis_server(scratch_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(scratch_dir / "redis", free_port(), persistent=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_url(redis_server: EmbeddedRedis) -> AsyncIterator[str]:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url())
    await client.flushall()
    await client.aclose()
    yield redis_server.url()


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """The bundled provider simulator, served by uvicorn in a thread for the session."""
    import threading
    import time

    import uvicorn

    from workers.simulator import create_simulator_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_simulator_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)

"""The asyncpg connection pool, with JSON codecs and UTC sessions."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON and JSONB come back as Python values and go in from them."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (one round trip per release).

    Every unit of work here keeps its state in a transaction (`SET LOCAL` through
    `set_config(..., true)`), never takes session advisory locks, LISTENs or leaves
    cursors open, so there is nothing session-level to reset; an open transaction is
    still rolled back by the pool before this is called.
    """


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    application_name: str = "ihm",
    command_timeout: float = 30.0,
) -> asyncpg.Pool:
    pool: Any = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        command_timeout=command_timeout,
        server_settings={"application_name": application_name, "timezone": "UTC"},
    )
    return pool


async def connect(dsn: str, *, application_name: str = "ihm") -> asyncpg.Connection:
    """One connection, codecs included (migrations, CLI one-offs)."""
    conn = await asyncpg.connect(
        dsn, server_settings={"application_name": application_name, "timezone": "UTC"}
    )
    await init_connection(conn)
    return conn

"""Organizations: created on first use of an org id."""

from __future__ import annotations

from uuid import UUID

import asyncpg

_ENSURE = """
INSERT INTO organizations (id, name) VALUES ($1, $2)
ON CONFLICT (id) DO NOTHING
"""


async def ensure(conn: asyncpg.Connection, org_id: UUID, name: str = "") -> None:
    await conn.execute(_ENSURE, org_id, name)

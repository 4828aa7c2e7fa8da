"""The integration type catalogue, seeded by migration."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class IntegrationType:
    key: str
    display_name: str
    category: str
    auth_kind: str
    default_interval_seconds: int
    min_interval_seconds: int
    docs_url: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> IntegrationType:
        return cls(**dict(row))


_COLUMNS = (
    "key, display_name, category, auth_kind, default_interval_seconds, "
    "min_interval_seconds, docs_url"
)
_LIST = f"SELECT {_COLUMNS} FROM integration_types ORDER BY key"
_GET = f"SELECT {_COLUMNS} FROM integration_types WHERE key = $1"


async def list_all(conn: asyncpg.Connection) -> list[IntegrationType]:
    return [IntegrationType.from_row(r) for r in await conn.fetch(_LIST)]


async def get(conn: asyncpg.Connection, key: str) -> IntegrationType | None:
    row = await conn.fetchrow(_GET, key)
    return IntegrationType.from_row(row) if row else None

"""Units of work: as an API caller (row-level security applies) or as the service.

An API request's queries run in one transaction with `SET LOCAL ROLE ihm_api`
and the caller's claims in `request.jwt.claims`, so Postgres refuses other
orgs' rows even where a resolver forgot to check. The worker runs as the
owning (service) role, which row-level security does not restrict.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

import asyncpg

ROLES = ("member", "coordinator", "org_admin", "service", "global_admin")

_BECOME_CALLER = (
    "SELECT set_config('role', 'ihm_api', true), set_config('request.jwt.claims', $1, true)"
)


@dataclass(frozen=True)
class Claims:
    """Who a unit of work acts for. `org_id` is the org whose rows it may touch."""

    sub: str
    role: str
    org_id: UUID | None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")

    def to_json(self) -> str:
        org = str(self.org_id) if self.org_id else None
        return json.dumps({"sub": self.sub, "role": self.role, "org_id": org})


@asynccontextmanager
async def as_caller(pool: asyncpg.Pool, claims: Claims) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        # SET LOCAL ROLE and the claims in one round trip (set_config(..., true) is SET LOCAL).
        await conn.execute(_BECOME_CALLER, claims.to_json())
        yield conn


@asynccontextmanager
async def as_service(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn

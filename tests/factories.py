"""Small async helpers that make rows the tests need."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from db import integrations, organizations
from db.health import CheckRecord


async def make_org(conn: asyncpg.Connection, name: str = "Org") -> UUID:
    org_id = uuid4()
    await organizations.ensure(conn, org_id, name)
    return org_id


async def make_integration(
    conn: asyncpg.Connection, org_id: UUID, integration_type: str = "http", **kwargs: Any
) -> integrations.Integration:
    kwargs.setdefault("config", {"url": "https://example.invalid/health"})
    return await integrations.upsert(conn, org_id, integration_type, **kwargs)


def check_record(
    org_id: UUID,
    integration_type: str = "http",
    status: str = "healthy",
    *,
    checked_at: datetime | None = None,
    latency_ms: int = 42,
    **kwargs: Any,
) -> CheckRecord:
    return CheckRecord(
        org_id=org_id,
        integration_type=integration_type,
        status=status,
        latency_ms=latency_ms,
        checked_at=checked_at or datetime.now(UTC),
        **kwargs,
    )

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


async def make_alert(
    conn: asyncpg.Connection,
    org_id: UUID,
    integration_type: str = "http",
    kind: str = "UNREACHABLE",
    **kwargs: Any,
) -> Any:
    """A FIRING db.alerts.Alert, opened the way the worker opens one (service role)."""
    from db import alerts

    kwargs.setdefault("severity", "CRITICAL")
    kwargs.setdefault("category", "NETWORK")
    kwargs.setdefault("title", f"{integration_type} is unreachable")
    kwargs.setdefault("message", "The connection was refused.")
    kwargs.setdefault("guidance", "The monitor keeps retrying.")
    kwargs.setdefault("now", datetime.now(UTC))
    alert, _ = await alerts.open_or_repeat(
        conn, org_id=org_id, integration_type=integration_type, kind=kind, **kwargs
    )
    return alert

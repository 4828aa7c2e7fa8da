"""Helpers for the alerting tests: record checks the way the runner does and read what was sent.

A check is written with `db.health.record_results` and handed to the
runner's hook (`jobs.on_recorded`) in one service-role transaction, exactly
as `workers.runner.run_health_checks` does. What was "sent" is what the
outbox holds: the in-app `notifications` rows and `notification_outbox` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from db import alert_rules, health
from db.alerts import Alert
from db.scope import as_service
from tests.factories import check_record
from workers.alerting.jobs import on_recorded

# Recent, so the raw results land in a ready partition; fixed within a test session.
T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
MIN = timedelta(minutes=1)


@dataclass(frozen=True)
class Sent:
    title: str
    body: str
    alert_id: UUID | None
    idempotency_key: str | None


async def check(
    pool: asyncpg.Pool,
    org_id: UUID,
    integration_type: str,
    status: str,
    at: datetime,
    *,
    category: str | None = None,
    latency_ms: int = 50,
    message: str | None = None,
    guidance: str | None = None,
) -> list[Alert]:
    """One check recorded and alerted on, as one run's transaction."""
    return await run(
        pool,
        [(org_id, integration_type, status, category)],
        at,
        latency_ms=latency_ms,
        message=message,
        guidance=guidance,
    )


async def run(
    pool: asyncpg.Pool,
    results: list[tuple[UUID, str, str, str | None]],
    at: datetime,
    *,
    latency_ms: int = 50,
    message: str | None = None,
    guidance: str | None = None,
) -> list[Alert]:
    """Several checks (org, type, status, category) recorded by one run."""
    records = [
        check_record(
            org,
            kind,
            status,
            checked_at=at,
            latency_ms=latency_ms,
            **(
                {}
                if status == "healthy"
                else {
                    "error_category": category,
                    "error_message": message or f"{kind} failed ({category}).",
                    "error_guidance": guidance or "The monitor keeps retrying.",
                }
            ),
        )
        for org, kind, status, category in results
    ]
    async with as_service(pool) as conn:
        rows = await health.record_results(conn, records)
        return await on_recorded(conn, rows, at)


async def set_rule(pool: asyncpg.Pool, org_id: UUID, **overrides: Any) -> None:
    """The org-wide rule: the contract's defaults with these changes."""
    fields: dict[str, Any] = {
        "integration_type": None,
        "failure_threshold": 2,
        "degraded_latency_ms": None,
        "repeat_interval_minutes": 60,
        "notify_on_recovery": True,
        "min_severity": "WARNING",
        "group_wait_seconds": 30,
        "silenced_until": None,
    }
    fields.update(overrides)
    async with as_service(pool) as conn:
        await alert_rules.upsert(conn, org_id=org_id, **fields)


async def sent(pool: asyncpg.Pool, org_id: UUID) -> list[Sent]:
    """The org's in-app notifications, oldest first."""
    rows = await pool.fetch(
        "SELECT title, body, alert_id, idempotency_key FROM notifications WHERE org_id = $1 "
        "ORDER BY created_at, idempotency_key",
        org_id,
    )
    return [Sent(**dict(r)) for r in rows]


async def outbox(pool: asyncpg.Pool, org_id: UUID) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT idempotency_key, channel_id, payload::text AS payload FROM notification_outbox "
            "WHERE org_id = $1 ORDER BY created_at, idempotency_key",
            org_id,
        )
    )


async def alerts_of(pool: asyncpg.Pool, org_id: UUID) -> list[Alert]:
    """Every alert of the org, oldest first."""
    rows = await pool.fetch(
        "SELECT * FROM health_check_alerts WHERE org_id = $1 ORDER BY opened_at, kind, fingerprint",
        org_id,
    )
    return [Alert.from_row(r) for r in rows]


async def firing(pool: asyncpg.Pool, org_id: UUID) -> list[tuple[str, str]]:
    return [(a.kind, a.fingerprint) for a in await alerts_of(pool, org_id) if a.state == "FIRING"]

"""Health reads: an org's integrations, one integration, its recent history, global counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from db import admin, health
from resolvers.access import GLOBAL, READ, require, target_org
from resolvers.errors import BadUserInput
from resolvers.session import Caller

MAX_TREND_HOURS = 24 * 30
MAX_HISTORY = 96


async def org_health(caller: Caller, org_id: UUID | None) -> list[health.IntegrationHealthRow]:
    require(caller.principal, READ, "read health")
    org = target_org(caller.principal, org_id)
    return await caller.as_caller(org, lambda c: health.org_health(c, org))


async def integration_health(
    caller: Caller, integration_type: str, org_id: UUID | None
) -> health.IntegrationHealthRow | None:
    rows = await org_health(caller, org_id)
    return next((r for r in rows if r.integration_type == integration_type), None)


async def health_trend(
    caller: Caller, integration_type: str, hours: int, org_id: UUID | None
) -> list[health.HistoryRow]:
    require(caller.principal, READ, "read health")
    if not 1 <= hours <= MAX_TREND_HOURS:
        raise BadUserInput(f"hours must be between 1 and {MAX_TREND_HOURS}.", field="hours")
    org = target_org(caller.principal, org_id)
    since = datetime.now(UTC) - timedelta(hours=hours)
    return await caller.as_caller(
        org, lambda c: health.history(c, org, integration_type, since=since, limit=MAX_HISTORY)
    )


async def global_counts(caller: Caller) -> tuple[health.GlobalCounts, admin.SchedulerStats]:
    require(caller.principal, GLOBAL, "read system-wide health")
    since = datetime.now(UTC) - timedelta(hours=24)

    async def work(conn: asyncpg.Connection) -> tuple[health.GlobalCounts, admin.SchedulerStats]:
        return await health.global_counts(conn), await admin.scheduler_stats(conn, since)

    return await caller.as_caller(None, work)

"""Maintenance cron jobs: raw-results partitions ahead of time, 30-day retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from db import results, rollups
from db.scope import as_service

log = structlog.get_logger(__name__)

PARTITIONS_BEHIND_DAYS = 1
PARTITIONS_AHEAD_DAYS = 7
ROLLUP_LOOKBACK = timedelta(hours=3)
KEEP = {
    "hourly_rollups": timedelta(days=396),  # 13 months
    "notifications": timedelta(days=90),
    "delivered_outbox": timedelta(days=30),
    "check_slots": timedelta(days=30),
}


async def ensure_result_partitions(ctx: dict[str, Any]) -> int:
    """Keep a week of day partitions ready so no insert lands in the default partition."""
    first_day = datetime.now(UTC).date() - timedelta(days=PARTITIONS_BEHIND_DAYS)
    async with as_service(ctx["pool"]) as conn:
        created = await results.ensure_partitions(
            conn, first_day, PARTITIONS_BEHIND_DAYS + PARTITIONS_AHEAD_DAYS + 1
        )
    if created:
        log.info("result_partitions_created", count=created)
    return created


async def prune_results(ctx: dict[str, Any]) -> results.PruneOutcome:
    async with as_service(ctx["pool"]) as conn:
        outcome = await results.prune(conn)
    log.info(
        "results_pruned",
        dropped_partitions=outcome.dropped_partitions,
        deleted_rows=outcome.deleted_rows,
    )
    return outcome


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


async def roll_up(ctx: dict[str, Any], *, now: datetime | None = None) -> dict[str, int]:
    """Hourly rollups of the hours closed recently (late results included), and the
    monthly summaries of this month and the last."""
    moment = now or datetime.now(UTC)
    end = _hour(moment)
    month = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    previous_month = (month - timedelta(days=1)).replace(day=1)
    async with as_service(ctx["pool"]) as conn:
        hours = await rollups.roll_up_hours(conn, end - ROLLUP_LOOKBACK, end)
        months = await rollups.roll_up_months(conn, previous_month, end)
    return {"hourly": hours, "monthly": months}


async def prune_old_rows(ctx: dict[str, Any], *, now: datetime | None = None) -> dict[str, int]:
    moment = now or datetime.now(UTC)
    removed: dict[str, int] = {}
    async with as_service(ctx["pool"]) as conn:
        for what, keep in KEEP.items():
            removed[what] = await rollups.prune(conn, what, moment - keep)
    log.info("old_rows_pruned", **removed)
    return removed

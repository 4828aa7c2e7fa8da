"""Maintenance cron jobs: raw-results partitions ahead of time, 30-day retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from db import results
from db.scope import as_service

log = structlog.get_logger(__name__)

PARTITIONS_BEHIND_DAYS = 1
PARTITIONS_AHEAD_DAYS = 7


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

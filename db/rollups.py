"""Hourly rollups of the raw results, monthly summaries of the hourly ones, and pruning.

Every statement is an idempotent upsert over a time range, so re-running a
range (a late result, a retried job) gives the same rows.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

_HOURLY = """
INSERT INTO health_rollups_hourly AS r
    (org_id, integration_type, bucket_start, checks, healthy, degraded, unreachable,
     avg_latency_ms, p95_latency_ms)
SELECT org_id, integration_type, date_trunc('hour', checked_at, 'UTC'),
       count(*), count(*) FILTER (WHERE status = 'healthy'),
       count(*) FILTER (WHERE status = 'degraded'),
       count(*) FILTER (WHERE status = 'unreachable'),
       avg(latency_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
  FROM health_check_results
 WHERE checked_at >= $1 AND checked_at < $2
 GROUP BY 1, 2, 3
ON CONFLICT (org_id, integration_type, bucket_start) DO UPDATE
   SET checks = EXCLUDED.checks, healthy = EXCLUDED.healthy, degraded = EXCLUDED.degraded,
       unreachable = EXCLUDED.unreachable, avg_latency_ms = EXCLUDED.avg_latency_ms,
       p95_latency_ms = EXCLUDED.p95_latency_ms
"""

# The month's p95 is the 95th percentile of its hourly p95 values (an approximation:
# raw results are gone by then); the average is weighted by the checks of each hour.
_MONTHLY = """
INSERT INTO health_rollups_monthly
    (org_id, integration_type, month_start, checks, healthy, degraded, unreachable,
     avg_latency_ms, p95_latency_ms)
SELECT org_id, integration_type, date_trunc('month', bucket_start, 'UTC')::date,
       sum(checks), sum(healthy), sum(degraded), sum(unreachable),
       sum(avg_latency_ms * checks) FILTER (WHERE avg_latency_ms IS NOT NULL)
         / nullif(sum(checks) FILTER (WHERE avg_latency_ms IS NOT NULL), 0),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY p95_latency_ms)
  FROM health_rollups_hourly
 WHERE bucket_start >= $1 AND bucket_start < $2
 GROUP BY 1, 2, 3
ON CONFLICT (org_id, integration_type, month_start) DO UPDATE
   SET checks = EXCLUDED.checks, healthy = EXCLUDED.healthy, degraded = EXCLUDED.degraded,
       unreachable = EXCLUDED.unreachable, avg_latency_ms = EXCLUDED.avg_latency_ms,
       p95_latency_ms = EXCLUDED.p95_latency_ms
"""

_PRUNE = {
    "hourly_rollups": "DELETE FROM health_rollups_hourly WHERE bucket_start < $1",
    "notifications": "DELETE FROM notifications WHERE created_at < $1",
    "delivered_outbox": (
        "DELETE FROM notification_outbox WHERE state IN ('DELIVERED', 'FAILED') AND created_at < $1"
    ),
    "check_slots": "DELETE FROM check_slots WHERE recorded_at < $1",
}


def _count(status: str) -> int:
    return int(status.split()[-1])


async def roll_up_hours(conn: asyncpg.Connection, start: datetime, end: datetime) -> int:
    """(Re)compute the hourly rollups of [start, end); return the rows written."""
    return _count(await conn.execute(_HOURLY, start, end))


async def roll_up_months(conn: asyncpg.Connection, start: datetime, end: datetime) -> int:
    return _count(await conn.execute(_MONTHLY, start, end))


async def prune(conn: asyncpg.Connection, what: str, before: datetime) -> int:
    return _count(await conn.execute(_PRUNE[what], before))

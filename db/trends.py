"""Trends: checks per bucket, uptime and latency over 24 h, 7 d or 30 d.

Read from the raw results log (kept 30 days, indexed by org, type and time);
buckets come back oldest first and include empty ones, so charts need no gaps
filled in. Uptime counts only healthy checks as up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

WINDOWS: dict[str, tuple[timedelta, int]] = {
    "LAST_24_HOURS": (timedelta(hours=24), 900),
    "LAST_7_DAYS": (timedelta(days=7), 3600),
    "LAST_30_DAYS": (timedelta(days=30), 86400),
}


@dataclass(frozen=True)
class Bucket:
    start: datetime
    checks: int
    healthy: int
    degraded: int
    unreachable: int
    avg_latency_ms: float | None
    p95_latency_ms: float | None


@dataclass(frozen=True)
class Trend:
    window: str
    bucket_seconds: int
    buckets: list[Bucket]
    checks: int
    uptime_ratio: float | None
    avg_latency_ms: float | None
    p95_latency_ms: float | None


# Buckets aligned to the epoch, so the same window asked twice lines up.
_BUCKETS = """
WITH bounds AS (
    SELECT to_timestamp(floor(extract(epoch FROM $3::timestamptz) / $4) * $4) AS first_bucket,
           $3::timestamptz AS since
), series AS (
    SELECT t AS integration_type, b AS start
      FROM unnest($2::text[]) t,
           bounds,
           generate_series(bounds.first_bucket, $5::timestamptz, make_interval(secs => $4)) b
), counted AS (
    SELECT integration_type,
           to_timestamp(floor(extract(epoch FROM checked_at) / $4) * $4) AS start,
           count(*) AS checks,
           count(*) FILTER (WHERE status = 'healthy') AS healthy,
           count(*) FILTER (WHERE status = 'degraded') AS degraded,
           count(*) FILTER (WHERE status = 'unreachable') AS unreachable,
           avg(latency_ms) AS avg_latency_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms
      FROM health_check_results, bounds
     WHERE org_id = $1 AND integration_type = ANY($2) AND checked_at >= bounds.since
     GROUP BY 1, 2
)
SELECT s.integration_type, s.start, coalesce(c.checks, 0) AS checks,
       coalesce(c.healthy, 0) AS healthy, coalesce(c.degraded, 0) AS degraded,
       coalesce(c.unreachable, 0) AS unreachable, c.avg_latency_ms, c.p95_latency_ms
  FROM series s LEFT JOIN counted c USING (integration_type, start)
 ORDER BY s.integration_type, s.start
"""

_TOTALS = """
SELECT integration_type, count(*) AS checks,
       count(*) FILTER (WHERE status = 'healthy') AS healthy,
       avg(latency_ms) AS avg_latency_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms
  FROM health_check_results
 WHERE org_id = $1 AND integration_type = ANY($2) AND checked_at >= $3
 GROUP BY integration_type
"""


async def trends(
    conn: asyncpg.Connection,
    org_id: UUID,
    integration_types: Sequence[str],
    window: str,
    *,
    now: datetime,
) -> dict[str, Trend]:
    """One window's trend for several integrations of an org, in two queries."""
    span, bucket_seconds = WINDOWS[window]
    since = now - span
    kinds = list(dict.fromkeys(integration_types))
    buckets: dict[str, list[Bucket]] = {k: [] for k in kinds}
    for row in await conn.fetch(_BUCKETS, org_id, kinds, since, bucket_seconds, now):
        buckets[row["integration_type"]].append(
            Bucket(
                row["start"],
                row["checks"],
                row["healthy"],
                row["degraded"],
                row["unreachable"],
                _float(row["avg_latency_ms"]),
                _float(row["p95_latency_ms"]),
            )
        )
    totals = {r["integration_type"]: r for r in await conn.fetch(_TOTALS, org_id, kinds, since)}
    result: dict[str, Trend] = {}
    for kind in kinds:
        total = totals.get(kind)
        checks = total["checks"] if total else 0
        result[kind] = Trend(
            window=window,
            bucket_seconds=bucket_seconds,
            buckets=buckets[kind],
            checks=checks,
            uptime_ratio=(total["healthy"] / checks) if total and checks else None,
            avg_latency_ms=_float(total["avg_latency_ms"]) if total else None,
            p95_latency_ms=_float(total["p95_latency_ms"]) if total else None,
        )
    return result


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]

"""Trends: checks per bucket, uptime and latency over 24 h, 7 d or 30 d.

Read from the raw results log (kept 30 days, indexed by org, type and time);
buckets come back oldest first and include empty ones, so charts need no gaps
filled in. Uptime counts only healthy checks as up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


# One scan for both the buckets and the window's totals (GROUPING SETS): buckets are
# aligned to the epoch, so the same window asked twice lines up; `total` marks the
# window's row per integration. Empty buckets are filled in by `trends`.
_TREND = """
SELECT integration_type, start, GROUPING(start) AS total,
       count(*) AS checks,
       count(*) FILTER (WHERE status = 'healthy') AS healthy,
       count(*) FILTER (WHERE status = 'degraded') AS degraded,
       count(*) FILTER (WHERE status = 'unreachable') AS unreachable,
       avg(latency_ms) AS avg_latency_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms
  FROM (SELECT integration_type, status, latency_ms,
               date_bin(make_interval(secs => $4), checked_at, 'epoch') AS start
          FROM health_check_results
         WHERE org_id = $1 AND integration_type = ANY($2) AND checked_at >= $3) r
 GROUP BY GROUPING SETS ((integration_type, start), (integration_type))
"""


def bucket_starts(since: datetime, now: datetime, bucket_seconds: int) -> list[datetime]:
    """Every bucket of the window, oldest first: from the one holding `since` to the
    one holding `now`."""
    first = math.floor(since.timestamp() / bucket_seconds) * bucket_seconds
    last = now.timestamp()
    return [
        datetime.fromtimestamp(start, UTC)
        for start in range(first, math.floor(last) + 1, bucket_seconds)
        if start <= last
    ]


async def trends(
    conn: asyncpg.Connection,
    org_id: UUID,
    integration_types: Sequence[str],
    window: str,
    *,
    now: datetime,
) -> dict[str, Trend]:
    """One window's trend for several integrations of an org, in one query."""
    span, bucket_seconds = WINDOWS[window]
    since = now - span
    kinds = list(dict.fromkeys(integration_types))
    found: dict[tuple[str, datetime], asyncpg.Record] = {}
    totals: dict[str, asyncpg.Record] = {}
    for row in await conn.fetch(_TREND, org_id, kinds, since, bucket_seconds):
        if row["total"]:
            totals[row["integration_type"]] = row
        else:
            found[(row["integration_type"], row["start"])] = row
    starts = bucket_starts(since, now, bucket_seconds)
    result: dict[str, Trend] = {}
    for kind in kinds:
        total = totals.get(kind)
        checks = total["checks"] if total else 0
        result[kind] = Trend(
            window=window,
            bucket_seconds=bucket_seconds,
            buckets=[_bucket(start, found.get((kind, start))) for start in starts],
            checks=checks,
            uptime_ratio=(total["healthy"] / checks) if total and checks else None,
            avg_latency_ms=_float(total["avg_latency_ms"]) if total else None,
            p95_latency_ms=_float(total["p95_latency_ms"]) if total else None,
        )
    return result


def _bucket(start: datetime, row: asyncpg.Record | None) -> Bucket:
    if row is None:
        return Bucket(start, 0, 0, 0, 0, None, None)
    return Bucket(
        start,
        row["checks"],
        row["healthy"],
        row["degraded"],
        row["unreachable"],
        _float(row["avg_latency_ms"]),
        _float(row["p95_latency_ms"]),
    )


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]

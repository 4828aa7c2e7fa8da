"""Rollups equal the raw data they summarize; trends on known data; old rows pruned."""

from __future__ import annotations

import itertools
import statistics
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import pytest

from db import trends
from db.scope import as_service
from tests.factories import make_integration, make_org
from workers import maintenance

NOW = datetime.now(UTC).replace(minute=40, second=0, microsecond=0)
HOUR = NOW.replace(minute=0) - timedelta(hours=1)
# (minutes after HOUR, status, latency) for two closed hours and the open one.
RESULTS = [
    (5, "healthy", 100),
    (20, "healthy", 120),
    (35, "degraded", 900),
    (50, "unreachable", None),
    (65, "healthy", 80),
    (80, "healthy", 90),
    (95, "healthy", 85),
    (110, "unreachable", None),
]


def p95(values: list[float]) -> float:
    """Postgres' percentile_cont(0.95): linear interpolation between closest ranks."""
    ordered = sorted(values)
    rank = 0.95 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        org_id = await make_org(conn)
        await make_integration(conn, org_id)
        await conn.executemany(
            "INSERT INTO health_check_results (org_id, integration_type, checked_at, status, "
            "latency_ms, \"trigger\") VALUES ($1, 'http', $2, $3, $4, 'scheduled')",
            [(org_id, HOUR + timedelta(minutes=m), s, lat) for m, s, lat in RESULTS],
        )
    return org_id


async def test_hourly_rollups_equal_the_raw_results_of_each_closed_hour(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await maintenance.roll_up({"pool": pool}, now=NOW)
    rows = await pool.fetch(
        "SELECT * FROM health_rollups_hourly WHERE org_id = $1 ORDER BY bucket_start", org
    )

    assert [r["bucket_start"] for r in rows] == [HOUR]  # the open hour is left for later
    (first,) = rows
    raw = [r for r in RESULTS if r[0] < 60]
    latencies = [float(r[2]) for r in raw if r[2] is not None]
    assert (first["checks"], first["healthy"], first["degraded"], first["unreachable"]) == (
        4,
        2,
        1,
        1,
    )
    assert first["avg_latency_ms"] == pytest.approx(statistics.mean(latencies))
    assert first["p95_latency_ms"] == pytest.approx(p95(latencies))


async def test_rolling_up_again_gives_the_same_rows_and_monthly_sums_match(
    pool: asyncpg.Pool, org: UUID
) -> None:
    later = NOW + timedelta(hours=1)
    await maintenance.roll_up({"pool": pool}, now=later)
    first = await pool.fetch("SELECT * FROM health_rollups_hourly ORDER BY bucket_start")
    await maintenance.roll_up({"pool": pool}, now=later)
    again = await pool.fetch("SELECT * FROM health_rollups_hourly ORDER BY bucket_start")
    monthly = await pool.fetch("SELECT * FROM health_rollups_monthly")

    assert first == again
    assert sum(r["checks"] for r in first) == len(RESULTS)
    assert sum(r["checks"] for r in monthly) == len(RESULTS)
    assert sum(r["healthy"] for r in monthly) == sum(1 for r in RESULTS if r[1] == "healthy")


async def test_the_24_hour_trend_has_15_minute_buckets_and_counts_only_healthy_as_up(
    pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_service(pool) as conn:
        found = await trends.trends(
            conn, org, ["http"], "LAST_24_HOURS", now=NOW + timedelta(hours=1)
        )
    trend = found["http"]

    assert trend.bucket_seconds == 900
    assert trend.checks == len(RESULTS)
    assert trend.uptime_ratio == pytest.approx(5 / 8)
    busy = [b for b in trend.buckets if b.checks]
    assert len(busy) == len(RESULTS)  # every result sits in its own quarter hour
    assert all(a.start < b.start for a, b in zip(trend.buckets, trend.buckets[1:], strict=False))
    assert sum(b.checks for b in trend.buckets) == trend.checks
    assert [b.start for b in trend.buckets] == trends.bucket_starts(
        NOW + timedelta(hours=1) - timedelta(hours=24), NOW + timedelta(hours=1), 900
    )
    empty = [b for b in trend.buckets if not b.checks]
    assert all(b.avg_latency_ms is None and b.healthy == 0 for b in empty)
    latencies = [float(r[2]) for r in RESULTS if r[2] is not None]
    assert trend.avg_latency_ms == pytest.approx(statistics.mean(latencies))


async def test_old_notifications_outbox_rows_and_rollups_are_pruned(
    pool: asyncpg.Pool, org: UUID
) -> None:
    old = NOW - timedelta(days=400)
    async with as_service(pool) as conn:
        await conn.execute(
            "INSERT INTO notifications (org_id, title, body, created_at) VALUES "
            "($1, 'old', 'b', $2), ($1, 'new', 'b', $3)",
            org,
            old,
            NOW,
        )
        await conn.execute(
            "INSERT INTO health_rollups_hourly (org_id, integration_type, bucket_start, checks, "
            "healthy, degraded, unreachable) VALUES ($1, 'http', $2, 1, 1, 0, 0)",
            org,
            old,
        )

    removed = await maintenance.prune_old_rows({"pool": pool}, now=NOW)

    assert removed["notifications"] == 1
    assert removed["hourly_rollups"] == 1
    assert await pool.fetchval("SELECT title FROM notifications") == "new"


@pytest.mark.parametrize(
    ("since", "now", "seconds", "first", "count"),
    [
        # a day of quarter hours: the one holding `since`, up to the one holding `now`
        ("2026-01-01T10:07:00", "2026-01-02T10:07:00", 900, "2026-01-01T10:00:00", 97),
        ("2026-01-01T10:00:00", "2026-01-02T10:00:00", 900, "2026-01-01T10:00:00", 97),
        ("2026-01-01T10:30:00", "2026-01-08T10:30:00", 3600, "2026-01-01T10:00:00", 169),
        ("2026-01-01T10:30:00", "2026-01-31T10:30:00", 86400, "2026-01-01T00:00:00", 31),
    ],
)
def test_trend_buckets_are_aligned_to_the_epoch_and_cover_the_window(
    since: str, now: str, seconds: int, first: str, count: int
) -> None:
    start, end = (datetime.fromisoformat(t).replace(tzinfo=UTC) for t in (since, now))

    starts = trends.bucket_starts(start, end, seconds)

    assert starts[0] == datetime.fromisoformat(first).replace(tzinfo=UTC)
    assert len(starts) == count
    assert all((b - a).total_seconds() == seconds for a, b in itertools.pairwise(starts))
    assert starts[-1] <= end < starts[-1] + timedelta(seconds=seconds)

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from workers import maintenance


async def test_partitions_are_kept_a_week_ahead(pool: asyncpg.Pool) -> None:
    ctx = {"pool": pool}

    await maintenance.ensure_result_partitions(ctx)
    created_again = await maintenance.ensure_result_partitions(ctx)

    names = {
        r["relname"]
        for r in await pool.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'health_check_results'::regclass"
        )
    }
    today = datetime.now(UTC).date()
    for offset in range(-1, maintenance.PARTITIONS_AHEAD_DAYS + 1):
        day = today + timedelta(days=offset)
        assert f"health_check_results_p{day:%Y%m%d}" in names
    assert created_again == 0


async def test_pruning_reports_what_it_removed(pool: asyncpg.Pool) -> None:
    outcome = await maintenance.prune_results({"pool": pool})

    assert outcome.deleted_rows == 0
    assert outcome.dropped_partitions == 0

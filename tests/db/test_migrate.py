from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from db.migrate import Migration, MigrationError, discover, migrate
from db.pool import connect

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_TABLES = {
    "schema_migrations",
    "organizations",
    "integration_types",
    "integration_config",
    "integration_credentials",
    "integration_health_status",
    "health_check_history",
    "health_check_results",
    "health_rollups_hourly",
    "health_rollups_monthly",
    "health_check_alerts",
    "alert_rules",
    "notification_channels",
    "notifications",
    "notification_reads",
    "notification_outbox",
    "export_runs",
    "audit_log",
    "check_slots",
    "provider_incidents",
    "provider_incident_orgs",
}

# Everything about the schema a migration could change.
_SCHEMA_FINGERPRINT = """
SELECT 'column', table_name || '.' || column_name || ':' || data_type || ':' || is_nullable
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || ':' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'policy', tablename || ':' || policyname || ':' || coalesce(qual, '')
  FROM pg_policies WHERE schemaname = 'public'
UNION ALL
SELECT 'function', p.proname || ':' || md5(p.prosrc)
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgname FROM pg_trigger WHERE NOT tgisinternal
ORDER BY 1, 2
"""


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
        "AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
    )
    return {r["relname"] for r in rows}


async def test_migrating_an_empty_database_creates_the_whole_data_model(empty_dsn: str) -> None:
    conn = await connect(empty_dsn)
    try:
        applied = await migrate(conn)

        assert [m.version for m in applied] == [m.version for m in discover()]
        assert await _tables(conn) == EXPECTED_TABLES
        recorded = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert recorded == len(discover())
    finally:
        await conn.close()


async def test_migrating_again_changes_nothing(empty_dsn: str) -> None:
    conn = await connect(empty_dsn)
    try:
        await migrate(conn)
        before = await conn.fetch(_SCHEMA_FINGERPRINT)

        applied_again = await migrate(conn)

        assert applied_again == []
        assert await conn.fetch(_SCHEMA_FINGERPRINT) == before
    finally:
        await conn.close()


async def test_two_concurrent_ihm_migrate_commands_both_succeed(empty_dsn: str) -> None:
    env = {**os.environ, "DATABASE_URL": empty_dsn}
    runs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ihm",
            "migrate",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.gather(*(r.communicate() for r in runs))

    assert [r.returncode for r in runs] == [0, 0], outputs
    said = sorted(out.decode().strip().split(":")[0] for out, _ in outputs)
    assert said == [f"applied {len(discover())}", "database is up to date"]
    conn = await connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(discover())
    finally:
        await conn.close()


async def test_a_migration_edited_after_it_was_applied_is_refused(empty_dsn: str) -> None:
    conn = await connect(empty_dsn)
    try:
        migrations = discover()
        await migrate(conn, migrations)
        edited = [*migrations[:-1], Migration(migrations[-1].version, "x", "SELECT 1")]

        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, edited)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_behind(empty_dsn: str) -> None:
    conn = await connect(empty_dsn)
    try:
        broken = [Migration("0001", "broken", "CREATE TABLE t (id int); SELECT 1/0;")]

        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, broken)

        assert await conn.fetchval("SELECT to_regclass('t')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()


async def test_every_org_scoped_table_has_row_level_security(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        """
        SELECT c.relname, c.relrowsecurity, c.relispartition,
               has_table_privilege('ihm_api', c.oid, 'SELECT') AS api_can_read
          FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                         AND a.attname = 'org_id' AND NOT a.attisdropped)
                OR c.relname = 'organizations')
        """
    )
    assert len(rows) > 10
    for row in rows:
        if row["relispartition"]:
            # Partitions are reached only through their parent, whose policy applies.
            assert not row["api_can_read"], row["relname"]
        else:
            assert row["relrowsecurity"], f"{row['relname']} has no row-level security"


async def test_integration_types_are_seeded_with_rate_limit_floors(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        "SELECT key, category, min_interval_seconds, default_interval_seconds "
        "FROM integration_types ORDER BY key"
    )
    floors = {r["key"]: r["min_interval_seconds"] for r in rows}

    assert floors == {
        "dynamics365": 900,
        "gmail": 300,
        "google_calendar": 300,
        "http": 300,
        "slack": 300,
        "xledger": 900,
    }
    assert all(r["default_interval_seconds"] >= r["min_interval_seconds"] for r in rows)

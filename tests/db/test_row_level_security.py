"""Org isolation enforced by Postgres itself, for requests running as ihm_api."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest

from db import health
from db.scope import Claims, as_caller, as_service
from tests.factories import check_record, make_integration, make_org

NOW = datetime.now(UTC)

# Tables whose every row belongs to one org, and the org column's name.
ORG_SCOPED = {
    "organizations": "id",
    "integration_config": "org_id",
    "integration_credentials": "org_id",
    "integration_health_status": "org_id",
    "health_check_history": "org_id",
    "health_check_results": "org_id",
    "health_rollups_hourly": "org_id",
    "health_rollups_monthly": "org_id",
    "health_check_alerts": "org_id",
    "alert_rules": "org_id",
    "notification_channels": "org_id",
    "notifications": "org_id",
    "notification_reads": "org_id",
    "export_runs": "org_id",
    "audit_log": "org_id",
}
# The API may not read these at all.
API_UNREADABLE = {"notification_outbox"}


async def _populate(conn: asyncpg.Connection, org: UUID) -> None:
    """One row of the org in every org-scoped table."""
    integration = await make_integration(conn, org)
    await conn.execute(
        "INSERT INTO integration_credentials (integration_id, org_id, key_id, ciphertext) "
        "VALUES ($1, $2, 'k1', '\\x00')",
        integration.id,
        org,
    )
    await health.record_results(conn, [check_record(org, checked_at=NOW)])
    for table, bucket in (
        ("health_rollups_hourly", "bucket_start"),
        ("health_rollups_monthly", "month_start"),
    ):
        await conn.execute(
            f"INSERT INTO {table} (org_id, integration_type, {bucket}, checks, healthy, "
            "degraded, unreachable) VALUES ($1, 'http', $2, 1, 1, 0, 0)",
            org,
            NOW if bucket == "bucket_start" else NOW.date(),
        )
    alert = await conn.fetchval(
        "INSERT INTO health_check_alerts (org_id, integration_type, kind, severity, title, "
        "message, guidance) VALUES ($1, 'http', 'UNREACHABLE', 'CRITICAL', 't', 'm', 'g') "
        "RETURNING id",
        org,
    )
    await conn.execute("INSERT INTO alert_rules (org_id) VALUES ($1)", org)
    channel = await conn.fetchval(
        "INSERT INTO notification_channels (org_id, kind, target_masked) "
        "VALUES ($1, 'EMAIL', 'a***@example.com') RETURNING id",
        org,
    )
    note = await conn.fetchval(
        "INSERT INTO notifications (org_id, alert_id, title, body) VALUES ($1, $2, 't', 'b') "
        "RETURNING id",
        org,
        alert,
    )
    await conn.execute(
        "INSERT INTO notification_reads (notification_id, org_id, user_id) VALUES ($1, $2, 'u')",
        note,
        org,
    )
    await conn.execute(
        "INSERT INTO notification_outbox (org_id, channel_id, alert_id, idempotency_key, payload) "
        "VALUES ($1, $2, $3, $4, '{}')",
        org,
        channel,
        alert,
        str(uuid4()),
    )
    await conn.execute(
        "INSERT INTO export_runs (org_id, integration_type, idempotency_key, status) "
        "VALUES ($1, 'http', 'http:2026-11-01', 'FAILED')",
        org,
    )
    await conn.execute(
        "INSERT INTO audit_log (actor, role, org_id, action) VALUES ('u', 'org_admin', $1, 'x')",
        org,
    )


@pytest.fixture
async def two_orgs(pool: asyncpg.Pool) -> tuple[UUID, UUID]:
    async with as_service(pool) as conn:
        org_a = await make_org(conn, "A")
        org_b = await make_org(conn, "B")
        await _populate(conn, org_a)
        await _populate(conn, org_b)
    return org_a, org_b


def claims(org: UUID | None, role: str = "org_admin") -> Claims:
    return Claims(sub="user-1", role=role, org_id=org)


async def test_org_b_sees_none_of_org_a_rows_in_any_org_scoped_table(
    pool: asyncpg.Pool, two_orgs: tuple[UUID, UUID]
) -> None:
    org_a, org_b = two_orgs
    async with as_service(pool) as conn:
        for table, column in ORG_SCOPED.items():
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", org_a)

    async with as_caller(pool, claims(org_b)) as conn:
        for table, column in ORG_SCOPED.items():
            seen = await conn.fetch(f"SELECT DISTINCT {column} AS org FROM {table}")
            assert [r["org"] for r in seen] == [org_b], table


async def test_the_api_role_cannot_read_the_delivery_outbox_or_secrets(
    pool: asyncpg.Pool, two_orgs: tuple[UUID, UUID]
) -> None:
    _, org_b = two_orgs
    for sql in (
        *(f"SELECT count(*) FROM {t}" for t in API_UNREADABLE),
        "SELECT ciphertext FROM integration_credentials",
        "SELECT secret_ciphertext FROM notification_channels",
        "SELECT * FROM health_check_results_default",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with as_caller(pool, claims(org_b)) as conn:
                await conn.fetch(sql)


async def test_without_claims_the_api_role_sees_nothing(
    pool: asyncpg.Pool, two_orgs: tuple[UUID, UUID]
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE ihm_api")
        assert await conn.fetchval("SELECT count(*) FROM integration_config") == 0
        assert await conn.fetchval("SELECT count(*) FROM integration_health_status") == 0


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO integration_health_status (org_id, integration_type, status, checked_at) "
        "VALUES ($1, 'slack', 'healthy', now())",
        "UPDATE integration_health_status SET status = 'healthy' WHERE org_id = $1",
        "DELETE FROM health_check_history WHERE org_id = $1",
        "INSERT INTO health_check_results (org_id, integration_type, checked_at, status, "
        "\"trigger\") VALUES ($1, 'http', now(), 'healthy', 'manual')",
    ],
)
async def test_the_api_role_cannot_write_health_status_or_its_history(
    pool: asyncpg.Pool, two_orgs: tuple[UUID, UUID], sql: str
) -> None:
    _, org_b = two_orgs
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, claims(org_b)) as conn:
            await conn.execute(sql, org_b)


async def test_the_api_role_cannot_write_rows_into_another_org(
    pool: asyncpg.Pool, two_orgs: tuple[UUID, UUID]
) -> None:
    org_a, org_b = two_orgs
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with as_caller(pool, claims(org_b)) as conn:
            await conn.execute(
                "INSERT INTO alert_rules (org_id, integration_type) VALUES ($1, 'slack')", org_a
            )
    async with as_caller(pool, claims(org_b)) as conn:
        updated = await conn.execute(
            "UPDATE integration_config SET enabled = false WHERE org_id = $1", org_a
        )
    assert updated == "UPDATE 0"


async def test_the_api_role_writes_its_own_org_configuration(
    pool: asyncpg.Pool, two_orgs: tuple[UUID, UUID]
) -> None:
    _, org_b = two_orgs
    async with as_caller(pool, claims(org_b)) as conn:
        updated = await conn.execute(
            "UPDATE integration_config SET enabled = false WHERE org_id = $1", org_b
        )
    assert updated == "UPDATE 1"


@pytest.mark.parametrize("role", ["member", "coordinator", "org_admin", "service"])
async def test_the_global_summary_refuses_anyone_but_global_admins(
    pool: asyncpg.Pool, two_orgs: tuple[UUID, UUID], role: str
) -> None:
    _, org_b = two_orgs
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="global_admin"):
        async with as_caller(pool, claims(org_b, role)) as conn:
            await health.global_counts(conn)


async def test_the_global_summary_answers_global_admins_across_orgs(
    pool: asyncpg.Pool, two_orgs: tuple[UUID, UUID]
) -> None:
    org_a, _ = two_orgs
    async with as_service(pool) as conn:
        await make_integration(conn, org_a, "slack")
        await health.record_results(conn, [check_record(org_a, "slack", "unreachable")])
        await make_integration(conn, org_a, "gmail")

    async with as_caller(pool, claims(None, "global_admin")) as conn:
        counts = await health.global_counts(conn)

    assert counts == health.GlobalCounts(
        organizations=2, integrations=4, healthy=2, degraded=0, unreachable=1, unknown=1
    )

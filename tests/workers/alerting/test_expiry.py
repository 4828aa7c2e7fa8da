"""Credentials about to expire: a WARNING two weeks ahead, resolved once renewed."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
import pytest

from db import credentials
from db.scope import as_service
from db.vault import Vault
from tests.factories import make_integration, make_org
from tests.workers.alerting.helpers import MIN, T0, alerts_of, check, firing, sent
from workers.alerting.jobs import scan_credential_expiry

DAY = timedelta(days=1)


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        return await make_org(conn)


async def gmail_expiring(
    pool: asyncpg.Pool, vault: Vault, org: UUID, expires_at: datetime | None
) -> None:
    """Gmail configured, with credentials the provider said expire then."""
    async with as_service(pool) as conn:
        integration = await make_integration(conn, org, "gmail", config={})
        await credentials.store(
            conn,
            vault,
            org_id=org,
            integration_id=integration.id,
            payload={"refreshToken": "r-token"},
            expires_at=expires_at,
        )


async def scan(pool: asyncpg.Pool, at: datetime) -> int:
    return await scan_credential_expiry({"pool": pool, "redis": None, "clock": lambda: at})


async def test_credentials_expiring_within_two_weeks_raise_a_warning_naming_the_date(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    expires = T0 + 5 * DAY
    await gmail_expiring(pool, vault, org, expires)

    assert await scan(pool, T0) == 1

    [alert] = await alerts_of(pool, org)
    assert (alert.kind, alert.fingerprint, alert.severity) == (
        "AUTH_FAILURE",
        "expiring",
        "WARNING",
    )
    title = f"Gmail credentials expire on {expires:%Y-%m-%d}"
    assert alert.title == title
    assert [n.title for n in await sent(pool, org)] == [title]


async def test_the_hourly_scan_does_not_repeat_the_warning_every_hour(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    await gmail_expiring(pool, vault, org, T0 + 5 * DAY)
    await scan(pool, T0)

    for hour in range(1, 24):
        await scan(pool, T0 + hour * 60 * MIN)

    [alert] = await alerts_of(pool, org)
    assert alert.occurrences == 1
    assert len(await sent(pool, org)) == 1
    await scan(pool, T0 + DAY)
    assert len(await sent(pool, org)) == 2  # a daily reminder


async def test_credentials_expiring_later_or_never_raise_nothing(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    await gmail_expiring(pool, vault, org, T0 + 15 * DAY)
    async with as_service(pool) as conn:
        other = await make_org(conn)
    await gmail_expiring(pool, vault, other, None)

    assert await scan(pool, T0) == 0

    assert await alerts_of(pool, org) == [] and await alerts_of(pool, other) == []


async def test_renewed_credentials_resolve_the_warning_and_say_so(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    await gmail_expiring(pool, vault, org, T0 + 5 * DAY)
    await scan(pool, T0)

    await gmail_expiring(pool, vault, org, T0 + 90 * DAY)
    await scan(pool, T0 + 60 * MIN)

    assert await firing(pool, org) == []
    assert (await sent(pool, org))[-1].title == "Gmail credentials were renewed"


async def test_a_healthy_check_does_not_resolve_the_expiry_warning(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    await gmail_expiring(pool, vault, org, T0 + 5 * DAY)
    await scan(pool, T0)
    await check(pool, org, "gmail", "unreachable", T0 + MIN, category="AUTH")

    await check(pool, org, "gmail", "healthy", T0 + 2 * MIN)

    assert await firing(pool, org) == [("AUTH_FAILURE", "expiring")]


async def test_removing_the_integration_resolves_the_warning_quietly(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    await gmail_expiring(pool, vault, org, T0 + 5 * DAY)
    await scan(pool, T0)
    await pool.execute("DELETE FROM integration_config WHERE org_id = $1", org)

    await scan(pool, T0 + 60 * MIN)

    assert await firing(pool, org) == []
    assert len(await sent(pool, org)) == 1

"""Provider-wide incidents: one provider failing in many orgs at once."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from db import health, incidents
from db.scope import Claims, as_caller, as_service
from tests.factories import check_record, make_integration, make_org
from tests.workers.alerting.helpers import MIN, T0, check, firing, sent, set_rule
from workers.alerting import engine

OUTAGE = "Xledger is having an outage; we are monitoring it"
GLOBAL_ADMIN = Claims(sub="root", role="global_admin", org_id=None)


@pytest.fixture
async def orgs(pool: asyncpg.Pool) -> list[UUID]:
    """Six orgs using Xledger (the incident threshold is then max(3, 30 % of 6) = 3)."""
    found = []
    async with as_service(pool) as conn:
        for n in range(6):
            org = await make_org(conn, f"Org {n}")
            await make_integration(conn, org, "xledger", config={})
            found.append(org)
    return found


async def open_incidents(pool: asyncpg.Pool) -> list[incidents.Incident]:
    async with as_service(pool) as conn:
        return list((await incidents.open_for(conn)).values())


async def test_the_same_provider_failing_in_many_orgs_opens_one_incident_and_tells_each_org_once(
    pool: asyncpg.Pool, orgs: list[UUID]
) -> None:
    failing, fine = orgs[:4], orgs[4:]

    # Two rounds of failures: the second reaches each org's failure threshold (2).
    for round_ in range(2):
        for i, org in enumerate(failing):
            at = T0 + (round_ * 5 + i) * MIN
            await check(pool, org, "xledger", "unreachable", at, category="TIMEOUT")
    for org in fine:
        await check(pool, org, "xledger", "healthy", T0 + 10 * MIN)

    [incident] = await open_incidents(pool)
    assert incident.integration_type == "xledger"
    assert incident.opened_at == T0 + 2 * MIN  # at the third org's failure
    for org in failing:
        assert [n.title for n in await sent(pool, org)] == [OUTAGE], org
        assert (await sent(pool, org))[0].idempotency_key == f"incident:{incident.id}:org:{org}"
        # monitoring is never suppressed: each org's own alert is recorded
        assert await firing(pool, org) == [("UNREACHABLE", "")]
    for org in fine:
        assert await sent(pool, org) == []


async def test_the_incident_resolves_when_the_failing_share_drops_and_recoveries_are_still_sent(
    pool: asyncpg.Pool, orgs: list[UUID]
) -> None:
    failing = orgs[:3]
    for org in failing:
        await set_rule(pool, org, failure_threshold=1)
    for i, org in enumerate(failing):
        await check(pool, org, "xledger", "unreachable", T0 + i * MIN, category="PROVIDER_ERROR")
    assert len(await open_incidents(pool)) == 1

    await check(pool, failing[0], "xledger", "healthy", T0 + 10 * MIN)

    assert await open_incidents(pool) == []
    assert [n.title for n in await sent(pool, failing[0])] == [
        "Xledger is unreachable",  # alone at first: its own alert
        OUTAGE,
        "Xledger is working again",
    ]
    # the others still fail: the outage notice is behind them, their own alert keeps firing
    assert await firing(pool, failing[1]) == [("UNREACHABLE", "")]


async def test_failures_of_the_orgs_own_making_do_not_open_an_incident(
    pool: asyncpg.Pool, orgs: list[UUID]
) -> None:
    for i, org in enumerate(orgs):
        category = "AUTH" if i % 2 == 0 else "CONFIGURATION"
        await check(pool, org, "xledger", "unreachable", T0 + i * MIN, category=category)

    assert await open_incidents(pool) == []
    assert (await sent(pool, orgs[0]))[0].title == "Xledger rejected the credentials"


async def test_generic_http_services_never_make_an_incident(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        many = [await make_org(conn) for _ in range(4)]
        for org in many:
            await make_integration(conn, org, "http")
    for org in many:
        await set_rule(pool, org, failure_threshold=1)
        await check(pool, org, "http", "unreachable", T0, category="NETWORK")

    assert await open_incidents(pool) == []
    assert [n.title for n in await sent(pool, many[-1])] == ["HTTP service is unreachable"]


async def test_the_cron_opens_what_concurrent_runs_could_not_see_and_closes_it_later(
    pool: asyncpg.Pool, orgs: list[UUID]
) -> None:
    # Runs committed side by side never saw each other's failure: statuses only.
    async with as_service(pool) as conn:
        await health.record_results(
            conn,
            [
                check_record(org, "xledger", "unreachable", checked_at=T0, error_category="NETWORK")
                for org in orgs[:3]
            ],
        )

    async with as_service(pool) as conn:
        opened, resolved = await engine.evaluate_all_incidents(conn, T0 + MIN)

    assert [i.integration_type for i in opened] == ["xledger"] and resolved == []
    for org in orgs[:3]:
        assert [n.title for n in await sent(pool, org)] == [OUTAGE]

    async with as_service(pool) as conn:
        again = await engine.evaluate_all_incidents(conn, T0 + 2 * MIN)
        await health.record_results(
            conn, [check_record(org, "xledger", "healthy", checked_at=T0 + 3 * MIN) for org in orgs]
        )
        _, closed = await engine.evaluate_all_incidents(conn, T0 + 4 * MIN)

    assert again == ([], [])
    assert [i.integration_type for i in closed] == ["xledger"]
    for org in orgs[:3]:
        assert len(await sent(pool, org)) == 1  # told once per incident


async def test_an_incident_stays_open_while_backed_off_checks_are_old(
    pool: asyncpg.Pool, orgs: list[UUID]
) -> None:
    for i, org in enumerate(orgs[:3]):
        await check(pool, org, "xledger", "unreachable", T0 + i * MIN, category="TIMEOUT")

    async with as_service(pool) as conn:
        _, resolved = await engine.evaluate_all_incidents(conn, T0 + 3 * 60 * MIN)

    assert resolved == []
    assert len(await open_incidents(pool)) == 1


async def test_a_silenced_org_is_counted_but_not_told(pool: asyncpg.Pool, orgs: list[UUID]) -> None:
    await set_rule(pool, orgs[0], silenced_until=T0 + 60 * MIN)

    for i, org in enumerate(orgs[:3]):
        await check(pool, org, "xledger", "unreachable", T0 + i * MIN, category="TIMEOUT")

    assert len(await open_incidents(pool)) == 1
    assert await sent(pool, orgs[0]) == []
    assert [n.title for n in await sent(pool, orgs[1])] == [OUTAGE]


# -- who may see incidents ---------------------------------------------------------------


async def test_global_admins_list_incidents_through_the_security_definer_function(
    pool: asyncpg.Pool, orgs: list[UUID]
) -> None:
    for i, org in enumerate(orgs[:4]):
        await check(pool, org, "xledger", "unreachable", T0 + i * MIN, category="TIMEOUT")

    async with as_caller(pool, GLOBAL_ADMIN) as conn:
        [summary] = await incidents.list_global(conn, open_only=True)

    assert (summary.integration_type, summary.display_name, summary.state) == (
        "xledger",
        "Xledger",
        "OPEN",
    )
    assert summary.affected_orgs == 4
    assert summary.orgs_with_provider == 6


async def test_org_users_cannot_see_incidents(pool: asyncpg.Pool, orgs: list[UUID]) -> None:
    org_admin = Claims(sub="admin", role="org_admin", org_id=orgs[0])

    async with as_caller(pool, org_admin) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await incidents.list_global(conn)
    for table in ("provider_incidents", "provider_incident_orgs"):
        async with as_caller(pool, GLOBAL_ADMIN) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {table}")

"""Alerts: opened and repeated race-free, resolved by compare-and-set, acted on by coordinators."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from db import alerts
from db.scope import Claims, as_caller, as_service
from tests.factories import make_alert, make_org

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def coordinator(org_id: UUID | None, role: str = "coordinator") -> Claims:
    return Claims(sub="coord-1", role=role, org_id=org_id)


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        return await make_org(conn)


async def _open(pool: asyncpg.Pool, org_id: UUID, **kwargs: Any) -> tuple[alerts.Alert, bool]:
    fields: dict[str, Any] = {
        "integration_type": "http",
        "kind": "UNREACHABLE",
        "severity": "CRITICAL",
        "category": "NETWORK",
        "title": "HTTP service is unreachable",
        "message": "The connection was refused.",
        "guidance": "The monitor keeps retrying.",
        "now": NOW,
    }
    fields.update(kwargs)
    async with as_service(pool) as conn:
        return await alerts.open_or_repeat(conn, org_id=org_id, **fields)


# -- opening and repeating -------------------------------------------------------


async def test_opening_an_alert_inserts_one_firing_alert(pool: asyncpg.Pool, org: UUID) -> None:
    alert, created = await _open(pool, org)

    assert created
    assert alert.state == "FIRING"
    assert alert.occurrences == 1
    assert alert.opened_at == alert.last_seen_at == NOW
    assert alert.resolved_at is None
    assert alert.org_id == org


async def test_a_repeat_bumps_occurrences_and_last_seen_of_the_firing_alert(
    pool: asyncpg.Pool, org: UUID
) -> None:
    first, _ = await _open(pool, org)

    again, created = await _open(
        pool, org, now=NOW + timedelta(minutes=5), message="The request timed out."
    )

    assert not created
    assert again.id == first.id
    assert again.occurrences == 2
    assert again.opened_at == NOW
    assert again.last_seen_at == NOW + timedelta(minutes=5)
    assert again.message == "The request timed out."


async def test_a_late_repeat_never_moves_last_seen_backwards(pool: asyncpg.Pool, org: UUID) -> None:
    await _open(pool, org, now=NOW)

    late, _ = await _open(pool, org, now=NOW - timedelta(minutes=1))

    assert late.last_seen_at == NOW


async def test_concurrent_opens_of_one_problem_leave_a_single_firing_alert(
    pool: asyncpg.Pool, org: UUID
) -> None:
    results = await asyncio.gather(*(_open(pool, org) for _ in range(5)))

    assert len({alert.id for alert, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    async with as_service(pool) as conn:
        firing = await alerts.active_for(conn, org, ["http"])
    assert [a.occurrences for a in firing["http"]] == [5]


async def test_each_kind_and_fingerprint_fires_its_own_alert(pool: asyncpg.Pool, org: UUID) -> None:
    unreachable, _ = await _open(pool, org)
    auth, auth_created = await _open(pool, org, kind="AUTH_FAILURE")
    flapping, flapping_created = await _open(pool, org, fingerprint="flapping")
    other, other_created = await _open(pool, org, integration_type="slack")

    assert auth_created and flapping_created and other_created
    assert len({unreachable.id, auth.id, flapping.id, other.id}) == 4


async def test_after_resolution_the_same_problem_opens_a_new_alert(
    pool: asyncpg.Pool, org: UUID
) -> None:
    first, _ = await _open(pool, org)
    async with as_service(pool) as conn:
        await alerts.resolve(
            conn, org_id=org, integration_type="http", kinds=["UNREACHABLE"], now=NOW
        )

    second, created = await _open(pool, org, now=NOW + timedelta(hours=1))

    assert created
    assert second.id != first.id
    assert second.occurrences == 1


# -- resolving -------------------------------------------------------------------


async def test_resolve_resolves_only_the_firing_alerts_of_the_given_kinds(
    pool: asyncpg.Pool, org: UUID
) -> None:
    unreachable, _ = await _open(pool, org)
    degraded, _ = await _open(pool, org, kind="DEGRADED")
    auth, _ = await _open(pool, org, kind="AUTH_FAILURE")
    slack, _ = await _open(pool, org, integration_type="slack")
    later = NOW + timedelta(minutes=15)

    async with as_service(pool) as conn:
        resolved = await alerts.resolve(
            conn, org_id=org, integration_type="http", kinds=["UNREACHABLE", "DEGRADED"], now=later
        )
        still = await alerts.active_for(conn, org, ["http", "slack"])

    assert {a.id for a in resolved} == {unreachable.id, degraded.id}
    assert all(a.state == "RESOLVED" and a.resolved_at == later for a in resolved)
    assert [a.id for a in still["http"]] == [auth.id]
    assert [a.id for a in still["slack"]] == [slack.id]


async def test_resolving_twice_resolves_nothing_the_second_time(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await _open(pool, org)

    async with as_service(pool) as conn:
        first = await alerts.resolve(
            conn, org_id=org, integration_type="http", kinds=["UNREACHABLE"], now=NOW
        )
        second = await alerts.resolve(
            conn, org_id=org, integration_type="http", kinds=["UNREACHABLE"], now=NOW
        )
        nothing = await alerts.resolve(conn, org_id=org, integration_type="http", kinds=[], now=NOW)

    assert len(first) == 1
    assert second == []
    assert nothing == []


async def test_concurrent_resolves_resolve_an_alert_exactly_once(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await _open(pool, org)

    async def resolve() -> list[alerts.Alert]:
        async with as_service(pool) as conn:
            return await alerts.resolve(
                conn, org_id=org, integration_type="http", kinds=["UNREACHABLE"], now=NOW
            )

    outcomes = await asyncio.gather(*(resolve() for _ in range(4)))

    assert sorted(len(o) for o in outcomes) == [0, 0, 0, 1]


async def test_the_api_role_can_neither_resolve_nor_rewrite_alerts(
    pool: asyncpg.Pool, org: UUID
) -> None:
    alert, _ = await _open(pool, org)

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, coordinator(org)) as conn:
            await alerts.resolve(
                conn, org_id=org, integration_type="http", kinds=["UNREACHABLE"], now=NOW
            )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, coordinator(org)) as conn:
            await conn.execute("UPDATE health_check_alerts SET title = 'x' WHERE id = $1", alert.id)


# -- reading -----------------------------------------------------------------------


async def _open_series(pool: asyncpg.Pool, org: UUID, n: int) -> list[alerts.Alert]:
    """n alerts opened a minute apart, newest first."""
    opened = [
        (await _open(pool, org, fingerprint=f"f{i}", now=NOW + timedelta(minutes=i)))[0]
        for i in range(n)
    ]
    return opened[::-1]


async def test_alerts_list_pages_newest_first(pool: asyncpg.Pool, org: UUID) -> None:
    newest_first = await _open_series(pool, org, 5)

    seen: list[alerts.Alert] = []
    pages: list[bool] = []
    after = None
    async with as_caller(pool, coordinator(org, "member")) as conn:
        while True:
            page = await alerts.list_for_org(conn, org, state=None, first=2, after=after)
            seen += page.items
            pages.append(page.has_next)
            if not page.has_next:
                break
            after = page.end_cursor

    assert [a.id for a in seen] == [a.id for a in newest_first]
    assert pages == [True, True, False]


async def test_alerts_opened_at_the_same_instant_page_by_id(pool: asyncpg.Pool, org: UUID) -> None:
    for i in range(3):
        await _open(pool, org, fingerprint=f"same-{i}")

    async with as_caller(pool, coordinator(org)) as conn:
        one = await alerts.list_for_org(conn, org, state=None, first=2, after=None)
        two = await alerts.list_for_org(conn, org, state=None, first=2, after=one.end_cursor)

    ids = [a.id for a in one.items + two.items]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 3
    assert not two.has_next


async def test_alerts_list_filters_by_state(pool: asyncpg.Pool, org: UUID) -> None:
    firing, _ = await _open(pool, org)
    resolved, _ = await _open(pool, org, kind="DEGRADED")
    async with as_service(pool) as conn:
        await alerts.resolve(conn, org_id=org, integration_type="http", kinds=["DEGRADED"], now=NOW)

    async with as_caller(pool, coordinator(org)) as conn:
        only_firing = await alerts.list_for_org(conn, org, state="FIRING", first=10, after=None)
        only_resolved = await alerts.list_for_org(conn, org, state="RESOLVED", first=10, after=None)
        everything = await alerts.list_for_org(conn, org, state=None, first=10, after=None)

    assert [a.id for a in only_firing.items] == [firing.id]
    assert [a.id for a in only_resolved.items] == [resolved.id]
    assert {a.id for a in everything.items} == {firing.id, resolved.id}


async def test_alerts_list_can_leave_dismissed_alerts_out(pool: asyncpg.Pool, org: UUID) -> None:
    kept, _ = await _open(pool, org)
    dismissed, _ = await _open(pool, org, kind="DEGRADED")
    async with as_caller(pool, coordinator(org)) as conn:
        await alerts.dismiss(conn, dismissed.id, "coord-1")
        inbox = await alerts.list_for_org(
            conn, org, state=None, first=10, after=None, include_dismissed=False
        )
        all_of_them = await alerts.list_for_org(conn, org, state=None, first=10, after=None)

    assert [a.id for a in inbox.items] == [kept.id]
    assert len(all_of_them.items) == 2


async def test_alerts_list_refuses_a_bad_cursor(pool: asyncpg.Pool, org: UUID) -> None:
    with pytest.raises(ValueError, match="invalid cursor"):
        async with as_caller(pool, coordinator(org)) as conn:
            await alerts.list_for_org(conn, org, state=None, first=10, after="nope")


async def test_active_alerts_of_many_types_come_from_one_call_dismissed_included(
    pool: asyncpg.Pool, org: UUID
) -> None:
    http, _ = await _open(pool, org)
    slack, _ = await _open(pool, org, integration_type="slack", kind="AUTH_FAILURE")
    await _open(pool, org, integration_type="slack", kind="DEGRADED")
    async with as_service(pool) as conn:
        await alerts.resolve(
            conn, org_id=org, integration_type="slack", kinds=["DEGRADED"], now=NOW
        )

    async with as_caller(pool, coordinator(org)) as conn:
        await alerts.dismiss(conn, http.id, "coord-1")
        active = await alerts.active_for(conn, org, ["http", "slack", "gmail"])
        none_asked = await alerts.active_for(conn, org, [])

    assert {t: [a.id for a in found] for t, found in active.items()} == {
        "http": [http.id],
        "slack": [slack.id],
        "gmail": [],
    }
    assert active["http"][0].dismissed_at is not None
    assert none_asked == {}


async def test_org_b_sees_nothing_of_org_a_alerts(pool: asyncpg.Pool, org: UUID) -> None:
    alert, _ = await _open(pool, org)
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")
        await make_alert(conn, org_b)

    async with as_caller(pool, coordinator(org_b)) as conn:
        listed = await alerts.list_for_org(conn, org, state=None, first=10, after=None)
        active = await alerts.active_for(conn, org, ["http"])
        got = await alerts.get(conn, alert.id)
        acknowledged = await alerts.acknowledge(conn, alert.id, "coord-b")
        dismissed = await alerts.dismiss(conn, alert.id, "coord-b")

    assert listed.items == []
    assert active == {"http": []}
    assert got is None
    assert acknowledged is None
    assert dismissed is None
    async with as_service(pool) as conn:
        untouched = await alerts.get(conn, alert.id)
    assert untouched is not None
    assert untouched.acknowledged_at is None and untouched.dismissed_at is None


# -- coordinator actions ---------------------------------------------------------


async def test_acknowledging_sets_time_and_user_once(pool: asyncpg.Pool, org: UUID) -> None:
    alert, _ = await _open(pool, org)

    async with as_caller(pool, Claims("coord-1", "coordinator", org)) as conn:
        first = await alerts.acknowledge(conn, alert.id, "coord-1")
    async with as_caller(pool, Claims("coord-2", "coordinator", org)) as conn:
        second = await alerts.acknowledge(conn, alert.id, "coord-2")

    assert first is not None and second is not None
    assert first.acknowledged_at is not None
    assert first.acknowledged_by == "coord-1"
    assert second == first
    assert first.dismissed_at is None


async def test_dismissing_sets_time_and_user_once_and_the_alert_keeps_firing(
    pool: asyncpg.Pool, org: UUID
) -> None:
    alert, _ = await _open(pool, org)

    async with as_caller(pool, Claims("coord-1", "coordinator", org)) as conn:
        first = await alerts.dismiss(conn, alert.id, "coord-1")
    async with as_caller(pool, Claims("coord-2", "coordinator", org)) as conn:
        second = await alerts.dismiss(conn, alert.id, "coord-2")

    assert first is not None
    assert first.dismissed_by == "coord-1"
    assert first.dismissed_at is not None
    assert first.state == "FIRING"
    assert second == first


@pytest.mark.parametrize("act", [alerts.acknowledge, alerts.dismiss])
async def test_acting_on_a_resolved_alert_raises_alert_resolved(
    pool: asyncpg.Pool, org: UUID, act: Callable[..., Awaitable[alerts.Alert | None]]
) -> None:
    alert, _ = await _open(pool, org)
    async with as_service(pool) as conn:
        await alerts.resolve(
            conn, org_id=org, integration_type="http", kinds=["UNREACHABLE"], now=NOW
        )

    with pytest.raises(alerts.AlertResolved) as raised:
        async with as_caller(pool, coordinator(org)) as conn:
            await act(conn, alert.id, "coord-1")

    assert raised.value.alert.id == alert.id
    assert raised.value.alert.state == "RESOLVED"


async def test_acting_on_an_acknowledged_alert_that_was_resolved_since_is_a_conflict(
    pool: asyncpg.Pool, org: UUID
) -> None:
    alert, _ = await _open(pool, org)
    async with as_caller(pool, coordinator(org)) as conn:
        await alerts.acknowledge(conn, alert.id, "coord-1")
    async with as_service(pool) as conn:
        await alerts.resolve(
            conn, org_id=org, integration_type="http", kinds=["UNREACHABLE"], now=NOW
        )

    with pytest.raises(alerts.AlertResolved):
        async with as_caller(pool, coordinator(org)) as conn:
            await alerts.acknowledge(conn, alert.id, "coord-1")


async def test_acting_on_an_unknown_alert_returns_none(pool: asyncpg.Pool, org: UUID) -> None:
    async with as_caller(pool, coordinator(org)) as conn:
        assert await alerts.acknowledge(conn, uuid4(), "coord-1") is None
        assert await alerts.dismiss(conn, uuid4(), "coord-1") is None
        assert await alerts.get(conn, uuid4()) is None


async def test_the_worker_records_when_an_alert_was_last_notified(
    pool: asyncpg.Pool, org: UUID
) -> None:
    alert, _ = await _open(pool, org)

    async with as_service(pool) as conn:
        notified = await alerts.mark_notified(conn, alert.id, NOW + timedelta(minutes=1))

    assert notified is not None
    assert notified.last_notified_at == NOW + timedelta(minutes=1)


async def test_a_global_admin_learns_which_org_an_alert_belongs_to(
    pool: asyncpg.Pool, org: UUID
) -> None:
    alert, _ = await _open(pool, org)

    async with as_caller(pool, Claims("root", "global_admin", None)) as conn:
        assert await alerts.org_of(conn, alert.id) == org
        assert await alerts.org_of(conn, uuid4()) is None


@pytest.mark.parametrize("role", ["member", "coordinator", "org_admin", "service"])
async def test_only_global_admins_may_look_up_an_alerts_org(
    pool: asyncpg.Pool, org: UUID, role: str
) -> None:
    alert, _ = await _open(pool, org)

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="global_admin"):
        async with as_caller(pool, coordinator(org, role)) as conn:
            await alerts.org_of(conn, alert.id)

"""The alert lifecycle against real Postgres: checks recorded, alerts and notifications written."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg
import pytest

from db import alerts, channels, health
from db.scope import Claims, as_caller, as_service
from db.vault import Vault
from tests.factories import check_record, make_integration, make_org
from tests.workers.alerting.helpers import (
    MIN,
    T0,
    alerts_of,
    check,
    firing,
    outbox,
    run,
    sent,
    set_rule,
)
from workers.alerting.jobs import on_recorded


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    """An org with Xledger, Slack and Gmail configured, and the default alert rule."""
    async with as_service(pool) as conn:
        org_id = await make_org(conn)
        for kind in ("xledger", "slack", "gmail"):
            await make_integration(conn, org_id, kind, config={})
    return org_id


def coordinator(org_id: UUID) -> Claims:
    return Claims(sub="coord-1", role="coordinator", org_id=org_id)


# -- thresholds ----------------------------------------------------------------------------


async def test_an_auth_failure_opens_a_critical_alert_at_once_with_the_credentials_guidance(
    pool: asyncpg.Pool, org: UUID
) -> None:
    changed = await check(
        pool,
        org,
        "xledger",
        "unreachable",
        T0,
        category="AUTH",
        message="Xledger rejected the API key.",
        guidance="Xledger rejected the API key: check the credentials in Settings.",
    )

    [alert] = await alerts_of(pool, org)
    assert (alert.kind, alert.severity, alert.state) == ("AUTH_FAILURE", "CRITICAL", "FIRING")
    assert alert.category == "AUTH"
    assert alert.guidance == "Xledger rejected the API key: check the credentials in Settings."
    assert [a.id for a in changed] == [alert.id]
    [notification] = await sent(pool, org)
    assert notification.title == "Xledger rejected the credentials"
    assert "check the credentials" in notification.body
    assert notification.alert_id == alert.id


async def test_unreachable_opens_only_at_the_failure_threshold(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, failure_threshold=3)

    await check(pool, org, "xledger", "unreachable", T0, category="TIMEOUT")
    await check(pool, org, "xledger", "unreachable", T0 + 5 * MIN, category="TIMEOUT")
    assert await alerts_of(pool, org) == []
    assert await sent(pool, org) == []

    await check(pool, org, "xledger", "unreachable", T0 + 10 * MIN, category="TIMEOUT")

    [alert] = await alerts_of(pool, org)
    assert (alert.kind, alert.severity) == ("UNREACHABLE", "CRITICAL")
    assert [n.title for n in await sent(pool, org)] == ["Xledger is unreachable"]


@pytest.mark.parametrize(
    ("status", "category", "latency_ms", "title"),
    [
        ("degraded", "RATE_LIMITED", 50, "Xledger is degraded"),
        ("degraded", "AUTH", 50, "Xledger is degraded"),  # a missing optional scope
        ("healthy", None, 3000, "Xledger is slow"),  # over the rule's degradedLatencyMs
    ],
)
async def test_a_degraded_answer_opens_a_warning(
    pool: asyncpg.Pool,
    org: UUID,
    status: str,
    category: str | None,
    latency_ms: int,
    title: str,
) -> None:
    await set_rule(pool, org, degraded_latency_ms=1000)

    await check(pool, org, "xledger", status, T0, category=category, latency_ms=latency_ms)

    [alert] = await alerts_of(pool, org)
    assert (alert.kind, alert.severity, alert.title) == ("DEGRADED", "WARNING", title)
    assert [n.title for n in await sent(pool, org)] == [title]


async def test_a_warning_below_the_rules_min_severity_is_recorded_but_not_notified(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, min_severity="CRITICAL")

    await check(pool, org, "xledger", "degraded", T0, category="RATE_LIMITED")
    await check(pool, org, "xledger", "healthy", T0 + 5 * MIN)

    [alert] = await alerts_of(pool, org)
    assert (alert.kind, alert.state) == ("DEGRADED", "RESOLVED")
    assert await sent(pool, org) == []


# -- one alert per problem -----------------------------------------------------------------


async def test_repeated_failures_update_one_alert_and_notify_once(
    pool: asyncpg.Pool, org: UUID
) -> None:
    for i in range(5):
        await check(pool, org, "xledger", "unreachable", T0 + i * 5 * MIN, category="NETWORK")

    [alert] = await alerts_of(pool, org)
    assert alert.occurrences == 4  # opened by the 2nd failure, seen again by the 3 after it
    assert alert.last_seen_at == T0 + 20 * MIN
    assert alert.opened_at == T0 + 5 * MIN
    assert len(await sent(pool, org)) == 1


async def test_another_problem_on_the_same_integration_replaces_the_alert_without_a_recovery(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, failure_threshold=1)
    await check(pool, org, "xledger", "unreachable", T0, category="NETWORK")

    await check(pool, org, "xledger", "unreachable", T0 + 5 * MIN, category="AUTH")

    by_kind = {a.kind: a.state for a in await alerts_of(pool, org)}
    assert by_kind == {"UNREACHABLE": "RESOLVED", "AUTH_FAILURE": "FIRING"}
    assert [n.title for n in await sent(pool, org)] == [
        "Xledger is unreachable",
        "Xledger rejected the credentials",
    ]


# -- recovery ---------------------------------------------------------------------------


async def test_the_first_healthy_check_resolves_the_alert_and_notifies_the_recovery(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await check(pool, org, "xledger", "unreachable", T0, category="AUTH")

    changed = await check(pool, org, "xledger", "healthy", T0 + 5 * MIN)

    [alert] = await alerts_of(pool, org)
    assert (alert.state, alert.resolved_at) == ("RESOLVED", T0 + 5 * MIN)
    assert [a.state for a in changed] == ["RESOLVED"]
    recovery = (await sent(pool, org))[-1]
    assert recovery.title == "Xledger is working again"
    assert recovery.body == "Resolved: Xledger rejected the credentials."
    assert recovery.idempotency_key == f"alert:{alert.id}:resolved"


async def test_without_notify_on_recovery_the_alert_resolves_silently(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, notify_on_recovery=False)
    await check(pool, org, "xledger", "unreachable", T0, category="AUTH")

    await check(pool, org, "xledger", "healthy", T0 + 5 * MIN)

    assert await firing(pool, org) == []
    assert len(await sent(pool, org)) == 1


async def test_hysteresis_resolves_only_after_recovery_threshold_healthy_checks(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, recovery_threshold=3)
    await check(pool, org, "xledger", "unreachable", T0, category="AUTH")

    await check(pool, org, "xledger", "healthy", T0 + 5 * MIN)
    await check(pool, org, "xledger", "healthy", T0 + 10 * MIN)
    assert await firing(pool, org) == [("AUTH_FAILURE", "")]

    await check(pool, org, "xledger", "healthy", T0 + 15 * MIN)

    assert await firing(pool, org) == []
    assert [n.title for n in await sent(pool, org)][-1] == "Xledger is working again"


async def test_a_failure_in_the_healthy_streak_starts_hysteresis_over(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, recovery_threshold=2)
    await check(pool, org, "xledger", "unreachable", T0, category="AUTH")
    await check(pool, org, "xledger", "healthy", T0 + 5 * MIN)
    await check(pool, org, "xledger", "degraded", T0 + 10 * MIN, category="RATE_LIMITED")

    await check(pool, org, "xledger", "healthy", T0 + 15 * MIN)

    assert await firing(pool, org) == [("DEGRADED", "")]


# -- acknowledge, dismiss, repeat ------------------------------------------------------------


async def test_a_firing_alert_is_notified_again_after_the_repeat_interval_only(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, failure_threshold=1, repeat_interval_minutes=60)

    for minutes in (0, 30, 59, 60, 90, 121):
        await check(pool, org, "xledger", "unreachable", T0 + minutes * MIN, category="NETWORK")

    [alert] = await alerts_of(pool, org)
    keys = [n.idempotency_key for n in await sent(pool, org)]
    # opened at 0, repeated at 60 (4th check) and 121 (6th check)
    assert keys == [f"alert:{alert.id}:{t}" for t in ("opened", "repeat:4", "repeat:6")]
    assert alert.last_notified_at == T0 + 121 * MIN


async def test_acknowledging_stops_repeats_but_not_the_recovery(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, failure_threshold=1, repeat_interval_minutes=10)
    [alert] = await check(pool, org, "xledger", "unreachable", T0, category="NETWORK")
    async with as_caller(pool, coordinator(org)) as conn:
        await alerts.acknowledge(conn, alert.id, "coord-1")

    await check(pool, org, "xledger", "unreachable", T0 + 15 * MIN, category="NETWORK")
    await check(pool, org, "xledger", "unreachable", T0 + 30 * MIN, category="NETWORK")
    assert len(await sent(pool, org)) == 1

    await check(pool, org, "xledger", "healthy", T0 + 35 * MIN)

    assert [n.title for n in await sent(pool, org)] == [
        "Xledger is unreachable",
        "Xledger is working again",
    ]


async def test_a_dismissed_alert_stays_active_until_resolved_and_its_recovery_is_sent(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, failure_threshold=1)
    [alert] = await check(pool, org, "xledger", "unreachable", T0, category="NETWORK")
    async with as_caller(pool, coordinator(org)) as conn:
        await alerts.dismiss(conn, alert.id, "coord-1")

    await check(pool, org, "xledger", "unreachable", T0 + 5 * MIN, category="NETWORK")

    async with as_caller(pool, coordinator(org)) as conn:
        active = await alerts.active_for(conn, org, ["xledger"])
        inbox = await alerts.list_for_org(
            conn, org, state="FIRING", first=10, after=None, include_dismissed=False
        )
    assert [(a.id, a.occurrences) for a in active["xledger"]] == [(alert.id, 2)]
    assert inbox.items == []

    await check(pool, org, "xledger", "healthy", T0 + 10 * MIN)

    assert await firing(pool, org) == []
    assert (await sent(pool, org))[-1].title == "Xledger is working again"


# -- silence ------------------------------------------------------------------------------


async def test_a_silenced_alert_is_recorded_not_sent_and_its_resolution_is_sent(
    pool: asyncpg.Pool, org: UUID, vault: Vault
) -> None:
    await _webhook(pool, vault, org)
    await set_rule(pool, org, silenced_until=T0 + 60 * MIN)

    await check(pool, org, "xledger", "unreachable", T0, category="AUTH")
    assert await firing(pool, org) == [("AUTH_FAILURE", "")]
    assert await sent(pool, org) == []
    assert await outbox(pool, org) == []

    await check(pool, org, "xledger", "healthy", T0 + 5 * MIN)

    assert [n.title for n in await sent(pool, org)] == ["Xledger is working again"]
    assert len(await outbox(pool, org)) == 1


async def test_an_alert_held_by_a_silence_goes_out_once_the_silence_ends(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, silenced_until=T0 + 30 * MIN)
    await check(pool, org, "xledger", "unreachable", T0, category="AUTH")

    await check(pool, org, "xledger", "unreachable", T0 + 35 * MIN, category="AUTH")

    assert [n.title for n in await sent(pool, org)] == ["Xledger rejected the credentials"]


# -- grouping ----------------------------------------------------------------------------


async def test_alerts_of_one_run_go_out_as_one_notification_per_channel(
    pool: asyncpg.Pool, org: UUID, vault: Vault
) -> None:
    channel = await _webhook(pool, vault, org)

    await run(
        pool,
        [
            (org, "xledger", "unreachable", "AUTH"),
            (org, "slack", "unreachable", "AUTH"),
            (org, "gmail", "degraded", "RATE_LIMITED"),
        ],
        T0,
    )

    assert len(await alerts_of(pool, org)) == 3
    [notification] = await sent(pool, org)
    assert notification.title == "3 integrations need attention"
    assert notification.body.splitlines() == [
        "- Slack rejected the credentials: slack failed (AUTH). The monitor keeps retrying.",
        "- Xledger rejected the credentials: xledger failed (AUTH). The monitor keeps retrying.",
        "- Gmail is degraded: gmail failed (RATE_LIMITED). The monitor keeps retrying.",
    ]
    [delivery] = await outbox(pool, org)
    assert delivery["channel_id"] == channel


async def test_with_no_group_wait_each_alert_is_its_own_notification(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, group_wait_seconds=0)

    await run(
        pool, [(org, "xledger", "unreachable", "AUTH"), (org, "slack", "unreachable", "AUTH")], T0
    )

    assert sorted(n.title for n in await sent(pool, org)) == [
        "Slack rejected the credentials",
        "Xledger rejected the credentials",
    ]


# -- flapping -----------------------------------------------------------------------------


async def test_a_flapping_integration_gets_one_flapping_alert_instead_of_one_per_flip(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, failure_threshold=1)
    statuses = ["unreachable", "healthy"] * 5
    for i, status in enumerate(statuses[:5]):
        await check(pool, org, "xledger", status, T0 + i * 2 * MIN, category="NETWORK")
    before = len(await sent(pool, org))  # four flips, told as they came

    for i, status in enumerate(statuses[5:], start=5):
        await check(pool, org, "xledger", status, T0 + i * 2 * MIN, category="NETWORK")

    flapping = [a for a in await alerts_of(pool, org) if a.fingerprint == "flapping"]
    assert [(a.kind, a.severity, a.state) for a in flapping] == [("DEGRADED", "WARNING", "FIRING")]
    assert flapping[0].title == "Xledger keeps changing between states"
    assert flapping[0].occurrences == 5
    new = (await sent(pool, org))[before:]
    assert [n.title for n in new] == ["Xledger keeps changing between states"]


async def test_flapping_resolves_once_the_integration_is_stable_for_the_window(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, failure_threshold=1)
    for i, status in enumerate(["unreachable", "healthy"] * 3):
        await check(pool, org, "xledger", status, T0 + i * 2 * MIN, category="NETWORK")
    assert ("DEGRADED", "flapping") in await firing(pool, org)
    last_flip = T0 + 10 * MIN

    await check(pool, org, "xledger", "healthy", last_flip + 20 * MIN)
    assert ("DEGRADED", "flapping") in await firing(pool, org)  # changed 20 minutes ago
    await check(pool, org, "xledger", "healthy", last_flip + 31 * MIN)

    assert await firing(pool, org) == []
    last = (await sent(pool, org))[-1]
    assert last.title == "Xledger is working again"
    assert last.body.splitlines() == [
        "- Xledger is working again: Resolved: Xledger is unreachable.",
        "- Xledger is stable again: Resolved: Xledger keeps changing between states.",
    ]


# -- safety -------------------------------------------------------------------------------


async def test_a_run_that_rolls_back_leaves_no_alert_and_no_notification(
    pool: asyncpg.Pool, org: UUID, vault: Vault
) -> None:
    await _webhook(pool, vault, org)

    with pytest.raises(RuntimeError, match="crash"):
        async with as_service(pool) as conn:
            rows = await health.record_results(
                conn,
                [check_record(org, "xledger", "unreachable", checked_at=T0, error_category="AUTH")],
            )
            assert await on_recorded(conn, rows, T0)
            raise RuntimeError("crash before commit")

    assert await alerts_of(pool, org) == []
    assert await sent(pool, org) == []
    assert await outbox(pool, org) == []
    assert await pool.fetchval("SELECT count(*) FROM integration_health_status") == 0


async def test_the_hook_run_twice_on_the_same_rows_notifies_once(
    pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_service(pool) as conn:
        rows = await health.record_results(
            conn,
            [check_record(org, "xledger", "unreachable", checked_at=T0, error_category="AUTH")],
        )
        await on_recorded(conn, rows, T0)
        await on_recorded(conn, rows, T0)

    assert len(await sent(pool, org)) == 1


async def _webhook(pool: asyncpg.Pool, vault: Vault, org_id: UUID) -> UUID:
    async with as_service(pool) as conn:
        channel = await channels.add(
            conn,
            vault,
            org_id=org_id,
            kind="WEBHOOK",
            target="https://hooks.example.test/ihm",
            secret="s3cret-signing-key",
            min_severity="WARNING",
        )
    return channel.id


async def test_repeat_intervals_count_from_the_last_notification_not_the_opening(
    pool: asyncpg.Pool, org: UUID
) -> None:
    await set_rule(pool, org, failure_threshold=1, repeat_interval_minutes=30)
    await check(pool, org, "xledger", "unreachable", T0, category="NETWORK")
    await check(pool, org, "xledger", "unreachable", T0 + 30 * MIN, category="NETWORK")

    await check(pool, org, "xledger", "unreachable", T0 + 45 * MIN, category="NETWORK")

    assert len(await sent(pool, org)) == 2
    [alert] = await alerts_of(pool, org)
    assert alert.last_notified_at == T0 + 30 * MIN
    assert alert.last_seen_at == T0 + 45 * MIN
    assert T0 + 45 * MIN - alert.last_notified_at < timedelta(minutes=30)

"""Alert rules: one org-wide, one per type; the most specific one applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from db import alert_rules
from db.alert_rules import EffectiveRule
from db.scope import Claims, as_caller, as_service
from tests.factories import make_org

UNTIL = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def admin(org_id: UUID, role: str = "org_admin") -> Claims:
    return Claims(sub="admin-1", role=role, org_id=org_id)


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        return await make_org(conn)


def _rule(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "integration_type": None,
        "failure_threshold": 3,
        "degraded_latency_ms": 1500,
        "repeat_interval_minutes": 30,
        "notify_on_recovery": False,
        "min_severity": "CRITICAL",
        "group_wait_seconds": 60,
        "silenced_until": None,
    }
    fields.update(overrides)
    return fields


async def _upsert(pool: asyncpg.Pool, org: UUID, **fields: Any) -> alert_rules.AlertRule:
    async with as_caller(pool, admin(org)) as conn:
        return await alert_rules.upsert(conn, org_id=org, **_rule(**fields))


async def test_an_org_wide_rule_is_stored_with_every_setting(pool: asyncpg.Pool, org: UUID) -> None:
    rule = await _upsert(pool, org, silenced_until=UNTIL)

    assert rule.org_id == org
    assert rule.integration_type is None
    assert (rule.failure_threshold, rule.degraded_latency_ms, rule.repeat_interval_minutes) == (
        3,
        1500,
        30,
    )
    assert (rule.notify_on_recovery, rule.min_severity, rule.group_wait_seconds) == (
        False,
        "CRITICAL",
        60,
    )
    assert rule.silenced_until == UNTIL
    assert rule.recovery_threshold == 1


async def test_upserting_again_replaces_the_rule_in_place(pool: asyncpg.Pool, org: UUID) -> None:
    first = await _upsert(pool, org)

    second = await _upsert(pool, org, failure_threshold=5, degraded_latency_ms=None)

    assert second.id == first.id
    assert second.failure_threshold == 5
    assert second.degraded_latency_ms is None
    assert second.updated_at > first.updated_at
    async with as_caller(pool, admin(org)) as conn:
        assert await alert_rules.list_for_org(conn, org) == [second]


async def test_the_org_wide_rule_and_per_type_rules_coexist(pool: asyncpg.Pool, org: UUID) -> None:
    org_wide = await _upsert(pool, org)
    slack = await _upsert(pool, org, integration_type="slack", failure_threshold=1)
    xledger = await _upsert(pool, org, integration_type="xledger", failure_threshold=4)

    async with as_caller(pool, admin(org, "member")) as conn:
        rules = await alert_rules.list_for_org(conn, org)

    assert [r.id for r in rules] == [org_wide.id, slack.id, xledger.id]


async def test_an_update_keeps_the_stored_recovery_threshold(pool: asyncpg.Pool, org: UUID) -> None:
    async with as_service(pool) as conn:
        await alert_rules.upsert(conn, org_id=org, recovery_threshold=3, **_rule())

    rule = await _upsert(pool, org, failure_threshold=7)

    assert rule.recovery_threshold == 3
    assert rule.failure_threshold == 7


async def test_out_of_range_settings_are_refused_by_the_table(
    pool: asyncpg.Pool, org: UUID
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await _upsert(pool, org, failure_threshold=0)


async def test_without_rules_the_contract_defaults_apply(pool: asyncpg.Pool, org: UUID) -> None:
    async with as_service(pool) as conn:
        effective = await alert_rules.effective_rule(conn, org, "slack")

    assert effective == EffectiveRule(
        org_id=org,
        integration_type="slack",
        rule_id=None,
        failure_threshold=2,
        recovery_threshold=1,
        degraded_latency_ms=None,
        repeat_interval_minutes=60,
        notify_on_recovery=True,
        min_severity="WARNING",
        group_wait_seconds=30,
        silenced_until=None,
    )
    assert effective.is_default


async def test_the_org_wide_rule_applies_to_types_without_their_own(
    pool: asyncpg.Pool, org: UUID
) -> None:
    org_wide = await _upsert(pool, org)

    async with as_service(pool) as conn:
        effective = await alert_rules.effective_rule(conn, org, "gmail")

    assert effective.rule_id == org_wide.id
    assert effective.integration_type == "gmail"
    assert effective.failure_threshold == 3
    assert not effective.is_default


async def test_a_types_own_rule_wins_over_the_org_wide_one(pool: asyncpg.Pool, org: UUID) -> None:
    await _upsert(pool, org)
    slack = await _upsert(pool, org, integration_type="slack", failure_threshold=1)

    async with as_service(pool) as conn:
        effective = await alert_rules.effective_rule(conn, org, "slack")

    assert effective.rule_id == slack.id
    assert effective.failure_threshold == 1


async def test_a_types_own_rule_applies_without_an_org_wide_one(
    pool: asyncpg.Pool, org: UUID
) -> None:
    slack = await _upsert(pool, org, integration_type="slack")

    async with as_service(pool) as conn:
        for_slack = await alert_rules.effective_rule(conn, org, "slack")
        for_gmail = await alert_rules.effective_rule(conn, org, "gmail")

    assert for_slack.rule_id == slack.id
    assert for_gmail.is_default


async def test_effective_rules_of_many_integrations_come_from_one_call(
    pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_service(pool) as conn:
        other = await make_org(conn, "B")
    org_wide = await _upsert(pool, org)
    slack = await _upsert(pool, org, integration_type="slack")
    keys = [(org, "slack"), (org, "gmail"), (other, "slack")]

    async with as_service(pool) as conn:
        effective = await alert_rules.effective_rules(conn, keys)
        nothing = await alert_rules.effective_rules(conn, [])

    assert {key: e.rule_id for key, e in effective.items()} == {
        (org, "slack"): slack.id,
        (org, "gmail"): org_wide.id,
        (other, "slack"): None,
    }
    assert nothing == {}


def test_a_rule_is_silenced_until_its_maintenance_window_ends() -> None:
    rule = EffectiveRule.default(UUID(int=1), "slack")
    silenced = EffectiveRule(**{**rule.__dict__, "silenced_until": UNTIL})

    assert not rule.silenced_at(UNTIL)
    assert silenced.silenced_at(UNTIL - timedelta(seconds=1))
    assert not silenced.silenced_at(UNTIL)


async def test_org_b_sees_nothing_of_org_a_rules(pool: asyncpg.Pool, org: UUID) -> None:
    await _upsert(pool, org)
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")

    async with as_caller(pool, admin(org_b)) as conn:
        listed = await alert_rules.list_for_org(conn, org)
        effective = await alert_rules.effective_rule(conn, org, "slack")

    assert listed == []
    assert effective.is_default


async def test_writing_a_rule_into_another_org_is_refused(pool: asyncpg.Pool, org: UUID) -> None:
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await _upsert_as(pool, org_b, org)


async def _upsert_as(pool: asyncpg.Pool, caller_org: UUID, org: UUID) -> None:
    async with as_caller(pool, admin(caller_org)) as conn:
        await alert_rules.upsert(conn, org_id=org, **_rule())

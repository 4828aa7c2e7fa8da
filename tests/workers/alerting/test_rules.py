"""The alerting rules as tables: pure functions of their inputs and an injected `now`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from workers.alerting import rules
from workers.alerting.rules import (
    AUTH_FAILURE,
    DEGRADED,
    EXPIRING,
    FLAPPING,
    UNREACHABLE,
    Assessment,
    HealthPlan,
    Item,
    Policy,
    Problem,
    Sample,
    Verdict,
)

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def samples(*statuses: str, every: timedelta = 5 * MIN, latency_ms: int = 50) -> list[Sample]:
    """History newest first: the first status was checked at NOW, each next one `every` earlier."""
    return [Sample(s, latency_ms, NOW - i * every) for i, s in enumerate(statuses)]


# -- what one check means ------------------------------------------------------------------

PROBLEM_UNREACHABLE = Assessment(Verdict.PROBLEM, Problem(UNREACHABLE, "CRITICAL"))
PROBLEM_AUTH = Assessment(Verdict.PROBLEM, Problem(AUTH_FAILURE, "CRITICAL"))
PROBLEM_DEGRADED = Assessment(Verdict.PROBLEM, Problem(DEGRADED, "WARNING"))
HEALTHY = Assessment(Verdict.HEALTHY)
PENDING = Assessment(Verdict.PENDING)


@pytest.mark.parametrize(
    ("status", "category", "latency", "failures", "threshold", "slow_ms", "expected"),
    [
        # healthy, fast or without a latency rule
        ("healthy", None, 50, 0, 2, None, HEALTHY),
        ("healthy", None, 50, 0, 2, 1000, HEALTHY),
        ("healthy", None, 1000, 0, 2, 1000, HEALTHY),
        # a healthy answer slower than the rule's limit counts as DEGRADED
        ("healthy", None, 1001, 0, 2, 1000, PROBLEM_DEGRADED),
        # degraded: slow, rate limited, missing scope (AUTH while answering) -> WARNING
        ("degraded", "RATE_LIMITED", 50, 0, 2, None, PROBLEM_DEGRADED),
        ("degraded", "AUTH", 50, 0, 2, None, PROBLEM_DEGRADED),
        # credentials rejected: CRITICAL at once, whatever the threshold
        ("unreachable", "AUTH", 50, 1, 5, None, PROBLEM_AUTH),
        # unreachable: only from failureThreshold consecutive failures on
        ("unreachable", "TIMEOUT", None, 1, 2, None, PENDING),
        ("unreachable", "NETWORK", None, 2, 2, None, PROBLEM_UNREACHABLE),
        ("unreachable", "PROVIDER_ERROR", None, 1, 1, None, PROBLEM_UNREACHABLE),
        ("unreachable", "CONFIGURATION", None, 4, 5, None, PENDING),
    ],
)  # fmt: skip
def test_a_check_is_assessed_against_the_thresholds(
    status: str,
    category: str | None,
    latency: int | None,
    failures: int,
    threshold: int,
    slow_ms: int | None,
    expected: Assessment,
) -> None:
    assert (
        rules.assess(
            status=status,
            category=category,
            latency_ms=latency,
            consecutive_failures=failures,
            failure_threshold=threshold,
            degraded_latency_ms=slow_ms,
        )
        == expected
    )


@pytest.mark.parametrize(
    ("history", "slow_ms", "streak"),
    [
        (samples(), None, 0),
        (samples("unreachable", "healthy"), None, 0),
        (samples("healthy", "unreachable", "healthy"), None, 1),
        (samples("healthy", "healthy", "healthy", "degraded"), None, 3),
        # slow answers break a healthy streak when the rule has a latency limit
        ([Sample("healthy", 50, NOW), Sample("healthy", 5000, NOW - 5 * MIN)], 1000, 1),
        ([Sample("healthy", 50, NOW), Sample("healthy", 5000, NOW - 5 * MIN)], None, 2),
    ],
)
def test_the_healthy_streak_counts_the_newest_healthy_checks_in_a_row(
    history: list[Sample], slow_ms: int | None, streak: int
) -> None:
    assert rules.healthy_streak(history, slow_ms) == streak


@pytest.mark.parametrize(
    ("history", "window", "changes"),
    [
        (samples("healthy", "healthy", "healthy"), 30 * MIN, 0),
        (samples("healthy", "unreachable", "healthy", "unreachable"), 30 * MIN, 3),
        # only changes whose newer check lies inside the window count
        (samples("healthy", "unreachable", "healthy", "unreachable", every=20 * MIN), 30 * MIN, 2),
        (samples("degraded", "healthy", "healthy", "unreachable"), 30 * MIN, 2),
    ],
)
def test_status_changes_are_counted_within_the_window(
    history: list[Sample], window: timedelta, changes: int
) -> None:
    assert rules.status_changes(history, NOW - window) == changes


@pytest.mark.parametrize(
    ("changes", "already_flapping", "flapping"),
    [
        (0, False, False),
        (rules.FLAP_MAX_CHANGES, False, False),
        (rules.FLAP_MAX_CHANGES + 1, False, True),
        # once flapping, it takes a whole window without a change to settle
        (1, True, True),
        (0, True, False),
    ],
)
def test_flapping_opens_above_the_limit_and_settles_after_a_quiet_window(
    changes: int, already_flapping: bool, flapping: bool
) -> None:
    assert rules.is_flapping(changes, already_flapping) is flapping


# -- what to do with the integration's alerts -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "assessment", "firing", "streak", "recovery_threshold", "changes", "plan"),
    [
        ("a new problem opens",
         PROBLEM_UNREACHABLE, set(), 0, 1, 1,
         HealthPlan(open=Problem(UNREACHABLE, "CRITICAL"))),
        ("the same problem again repeats the one alert (dedup)",
         PROBLEM_UNREACHABLE, {UNREACHABLE}, 0, 1, 0,
         HealthPlan(open=Problem(UNREACHABLE, "CRITICAL"))),
        ("another problem replaces the old one without a recovery",
         PROBLEM_AUTH, {UNREACHABLE}, 0, 1, 0,
         HealthPlan(open=Problem(AUTH_FAILURE, "CRITICAL"), superseded=frozenset({UNREACHABLE}))),
        ("below the failure threshold nothing changes",
         PENDING, {DEGRADED}, 0, 1, 1,
         HealthPlan()),
        ("the first healthy check resolves by default",
         HEALTHY, {UNREACHABLE}, 1, 1, 1,
         HealthPlan(recovered=frozenset({UNREACHABLE}))),
        ("hysteresis: fewer healthy checks than the threshold keep it firing",
         HEALTHY, {UNREACHABLE}, 2, 3, 1,
         HealthPlan()),
        ("hysteresis: the threshold reached resolves",
         HEALTHY, {UNREACHABLE}, 3, 3, 0,
         HealthPlan(recovered=frozenset({UNREACHABLE}))),
        ("recovery leaves the expiry warning alone",
         HEALTHY, {AUTH_FAILURE, EXPIRING}, 1, 1, 1,
         HealthPlan(recovered=frozenset({AUTH_FAILURE}))),
        ("too many changes: one flapping alert, the others untouched",
         HEALTHY, {UNREACHABLE}, 1, 1, rules.FLAP_MAX_CHANGES + 1,
         HealthPlan(open=Problem(FLAPPING, "WARNING"), flapping=True)),
        ("still changing while flapping: still flapping",
         PROBLEM_UNREACHABLE, {FLAPPING}, 0, 1, 1,
         HealthPlan(open=Problem(FLAPPING, "WARNING"), flapping=True)),
        ("a quiet window settles flapping and resolves what recovered",
         HEALTHY, {FLAPPING, UNREACHABLE}, 6, 1, 0,
         HealthPlan(recovered=frozenset({FLAPPING, UNREACHABLE}))),
        ("settled into a failure: flapping resolves, the failure opens",
         PROBLEM_UNREACHABLE, {FLAPPING}, 0, 1, 0,
         HealthPlan(open=Problem(UNREACHABLE, "CRITICAL"), recovered=frozenset({FLAPPING}))),
    ],
)  # fmt: skip
def test_alert_transitions(
    name: str,
    assessment: Assessment,
    firing: set[rules.AlertKey],
    streak: int,
    recovery_threshold: int,
    changes: int,
    plan: HealthPlan,
) -> None:
    assert (
        rules.plan_health_alerts(
            assessment,
            firing=frozenset(firing),
            healthy_streak=streak,
            recovery_threshold=recovery_threshold,
            changes_in_window=changes,
        )
        == plan
    ), name


# -- when to notify ------------------------------------------------------------------------------

HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("name", "severity", "acknowledged", "last_notified", "policy", "due"),
    [
        ("a new alert is announced", "CRITICAL", False, None, Policy(), True),
        ("a repeat within the interval is not", "CRITICAL", False, NOW - 59 * MIN, Policy(), False),
        ("a repeat after the interval is", "CRITICAL", False, NOW - HOUR, Policy(), True),
        ("a shorter interval repeats sooner",
         "CRITICAL", False, NOW - 10 * MIN, Policy(repeat_interval=10 * MIN), True),
        ("acknowledged: never again", "CRITICAL", True, NOW - 5 * HOUR, Policy(), False),
        ("silenced: held", "CRITICAL", False, None, Policy(silenced_until=NOW + MIN), False),
        ("a silence that ended lets the held alert out",
         "CRITICAL", False, None, Policy(silenced_until=NOW), True),
        ("below min severity: recorded, not notified",
         "WARNING", False, None, Policy(min_severity="CRITICAL"), False),
        ("at min severity: notified", "WARNING", False, None, Policy(min_severity="WARNING"), True),
        ("INFO is below the default", "INFO", False, None, Policy(), False),
    ],
)  # fmt: skip
def test_firing_notifications(
    name: str,
    severity: str,
    acknowledged: bool,
    last_notified: datetime | None,
    policy: Policy,
    due: bool,
) -> None:
    assert (
        rules.firing_notification_due(
            severity=severity,
            acknowledged=acknowledged,
            last_notified_at=last_notified,
            policy=policy,
            now=NOW,
        )
        is due
    ), name


@pytest.mark.parametrize(
    ("severity", "policy", "due"),
    [
        ("CRITICAL", Policy(), True),
        # the resolution goes out even during a silence
        ("CRITICAL", Policy(silenced_until=NOW + HOUR), True),
        ("CRITICAL", Policy(notify_on_recovery=False), False),
        # never told in the first place, so no recovery either
        ("WARNING", Policy(min_severity="CRITICAL"), False),
    ],
)
def test_recovery_notifications(severity: str, policy: Policy, due: bool) -> None:
    assert rules.recovery_notification_due(severity=severity, policy=policy) is due


# -- grouping ----------------------------------------------------------------------------------


def item(n: int, *, recovery: bool = False, severity: str = "CRITICAL", wait: int = 30) -> Item:
    return Item(
        key=f"alert:{n}:{'resolved' if recovery else 'opened'}",
        alert_id=UUID(int=n),
        integration_type=f"type{n}",
        severity=severity,
        title=f"Provider {n} is unreachable" if not recovery else f"Provider {n} works again",
        detail=f"detail {n}",
        recovery=recovery,
        group_wait_seconds=wait,
    )


def test_one_item_is_sent_as_it_is() -> None:
    [message] = rules.compose([item(1)])

    assert message.title == "Provider 1 is unreachable"
    assert message.body == "detail 1"
    assert message.idempotency_key == "alert:1:opened"
    assert message.alert_id == UUID(int=1)


def test_items_of_one_run_go_out_as_one_message_listing_them() -> None:
    [message] = rules.compose([item(1, severity="WARNING"), item(2)])

    assert message.title == "2 integrations need attention"
    assert message.body.splitlines() == [
        "- Provider 2 is unreachable: detail 2",
        "- Provider 1 is unreachable: detail 1",
    ]
    assert message.severity == "CRITICAL"
    assert message.alert_id is None


def test_a_group_mixing_problems_and_recoveries_says_both() -> None:
    [message] = rules.compose([item(1), item(2, recovery=True)])

    assert message.title == "1 integration needs attention, 1 recovered"


def test_a_group_about_one_integration_is_titled_with_its_most_pressing_news() -> None:
    warning = item(1, severity="WARNING")
    critical = replace(
        warning, key="alert:9:opened", severity="CRITICAL", title="Provider 1 rejected the key"
    )

    [message] = rules.compose([warning, critical])

    assert message.title == "Provider 1 rejected the key"
    assert len(message.body.splitlines()) == 2


def test_a_group_of_recoveries_counts_the_integrations() -> None:
    [message] = rules.compose([item(1, recovery=True), item(2, recovery=True)])

    assert message.title == "2 integrations recovered"


def test_a_group_key_does_not_depend_on_the_order_items_arrived_in() -> None:
    first = rules.compose([item(1), item(2), item(3)])
    second = rules.compose([item(3), item(1), item(2)])

    assert first == second
    assert first[0].idempotency_key.startswith("group:")


def test_items_whose_rule_waits_zero_seconds_go_out_one_by_one() -> None:
    messages = rules.compose([item(1, wait=0), item(2, wait=0), item(3)])

    assert sorted(m.idempotency_key for m in messages) == [
        "alert:1:opened",
        "alert:2:opened",
        "alert:3:opened",
    ]


# -- texts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["TIMEOUT", "NETWORK"])
def test_an_export_failing_on_the_network_names_a_network_timeout(category: str) -> None:
    text = rules.export_failure_text(
        "Xledger", idempotency_key="xledger:2026-11", error_category=category, error_message=None
    )

    assert "Xledger" in text.title and "a network timeout" in text.title
    assert "a network timeout" in text.message


def test_an_export_failing_otherwise_does_not_claim_a_timeout() -> None:
    text = rules.export_failure_text(
        "Xledger", idempotency_key="k", error_category="PROVIDER_ERROR", error_message="HTTP 500"
    )

    assert "timeout" not in text.title + text.message
    assert "HTTP 500" in text.message


def test_an_auth_alert_keeps_the_checks_guidance() -> None:
    text = rules.problem_text(
        Problem(AUTH_FAILURE, "CRITICAL"),
        "Xledger",
        error_message="Xledger rejected the API key.",
        error_guidance="Check the credentials in Settings.",
    )

    assert text.guidance == "Check the credentials in Settings."


# -- provider-wide incidents --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orgs", "threshold"),
    [(1, 3), (3, 3), (10, 3), (11, 4), (20, 6), (100, 30), (101, 31)],
)
def test_the_incident_threshold_is_three_orgs_or_thirty_percent(orgs: int, threshold: int) -> None:
    assert rules.incident_threshold(orgs) == threshold


@pytest.mark.parametrize(
    ("failing", "orgs", "opens"),
    [(2, 2, False), (3, 3, True), (3, 10, True), (3, 11, False), (4, 11, True)],
)
def test_an_incident_opens_at_the_threshold(failing: int, orgs: int, opens: bool) -> None:
    assert rules.incident_opens(failing_recently=failing, orgs_with_provider=orgs) is opens


@pytest.mark.parametrize(
    ("failing", "orgs", "resolves"), [(3, 10, False), (2, 10, True), (0, 0, True)]
)
def test_an_incident_resolves_below_the_threshold(failing: int, orgs: int, resolves: bool) -> None:
    assert rules.incident_resolves(failing_now=failing, orgs_with_provider=orgs) is resolves


@pytest.mark.parametrize(
    ("integration_type", "status", "category", "counts"),
    [
        ("xledger", "unreachable", "TIMEOUT", True),
        ("xledger", "unreachable", "PROVIDER_ERROR", True),
        ("xledger", "unreachable", None, True),
        # the org's own problems say nothing about the provider
        ("xledger", "unreachable", "AUTH", False),
        ("xledger", "unreachable", "CONFIGURATION", False),
        ("xledger", "degraded", "RATE_LIMITED", False),
        # every org's "http" is a different service
        ("http", "unreachable", "TIMEOUT", False),
    ],
)
def test_which_failures_count_towards_an_incident(
    integration_type: str, status: str, category: str | None, counts: bool
) -> None:
    assert rules.counts_for_incident(integration_type, status, category) is counts


# -- credential expiry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_at", "soon"),
    [
        (None, False),
        (NOW + timedelta(days=15), False),
        (NOW + timedelta(days=14), True),
        (NOW + timedelta(days=1), True),
        (NOW - timedelta(days=1), True),
    ],
)
def test_credentials_expiring_within_two_weeks_are_warned_about(
    expires_at: datetime | None, soon: bool
) -> None:
    assert rules.expiring_soon(expires_at, NOW) is soon


def test_the_expiry_warning_names_the_provider_and_the_date() -> None:
    text = rules.expiry_text("Gmail", datetime(2026, 11, 12, 9, 0, tzinfo=UTC), NOW)

    assert text.title == "Gmail credentials expire on 2026-11-12"
    assert "in 9 days" in text.message

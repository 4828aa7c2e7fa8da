"""Alerting rules as pure functions of their inputs and `now` (no I/O).

What a check means for alerts (thresholds, hysteresis, flapping), when an
alert is worth a notification (severity, silence, repeat interval,
acknowledgement), how one run's notifications are grouped into one message,
when a provider-wide incident opens and closes, and when credentials are
about to expire. `engine.py` feeds these with rows and carries out what they
decide.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from uuid import UUID

# -- thresholds ----------------------------------------------------------------------

# Flapping: more than FLAP_MAX_CHANGES status changes within FLAP_WINDOW give one
# "flapping" alert; it resolves once the status has not changed for a whole window.
FLAP_MAX_CHANGES = 4
FLAP_WINDOW = timedelta(minutes=30)

# Provider-wide incidents: a provider failing (unreachable for a reason that is not
# the org's own: not AUTH, not CONFIGURATION) in at least max(INCIDENT_MIN_ORGS,
# INCIDENT_MIN_SHARE_PERCENT % of the orgs that have it enabled), each of them
# checked within INCIDENT_WINDOW, opens one incident.
INCIDENT_MIN_ORGS = 3
INCIDENT_MIN_SHARE_PERCENT = 30
INCIDENT_WINDOW = timedelta(minutes=15)
# Not one provider: every org's "http" integration points at a service of its own.
INCIDENT_EXCLUDED_TYPES = frozenset({"http"})
INCIDENT_IGNORED_CATEGORIES = frozenset({"AUTH", "CONFIGURATION"})

# Credentials expiring within this window raise a WARNING, reminded at most daily.
EXPIRY_WARNING_WINDOW = timedelta(days=14)
EXPIRY_MIN_REPEAT = timedelta(days=1)

SEVERITY_RANK = {"INFO": 0, "WARNING": 1, "CRITICAL": 2}

# -- alert identities ------------------------------------------------------------------

# (kind, fingerprint): one firing alert per key and integration.
AlertKey = tuple[str, str]
AUTH_FAILURE: AlertKey = ("AUTH_FAILURE", "")
UNREACHABLE: AlertKey = ("UNREACHABLE", "")
DEGRADED: AlertKey = ("DEGRADED", "")
FLAPPING: AlertKey = ("DEGRADED", "flapping")
EXPIRING: AlertKey = ("AUTH_FAILURE", "expiring")
# What a health check opens and resolves; flapping, expiry and exports have their own rules.
HEALTH_KEYS: frozenset[AlertKey] = frozenset({AUTH_FAILURE, UNREACHABLE, DEGRADED})


@dataclass(frozen=True)
class Problem:
    key: AlertKey
    severity: str

    @property
    def kind(self) -> str:
        return self.key[0]

    @property
    def fingerprint(self) -> str:
        return self.key[1]


class Verdict(Enum):
    HEALTHY = "healthy"
    # Failing, but not yet failureThreshold times in a row: change nothing yet.
    PENDING = "pending"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    problem: Problem | None = None


def effective_status(status: str, latency_ms: int | None, degraded_latency_ms: int | None) -> str:
    """The stored status, except that a healthy answer slower than the rule's limit is degraded."""
    if (
        status == "healthy"
        and degraded_latency_ms is not None
        and latency_ms is not None
        and latency_ms > degraded_latency_ms
    ):
        return "degraded"
    return status


def assess(
    *,
    status: str,
    category: str | None,
    latency_ms: int | None,
    consecutive_failures: int,
    failure_threshold: int,
    degraded_latency_ms: int | None,
) -> Assessment:
    """What one check means for the integration's alerts."""
    seen = effective_status(status, latency_ms, degraded_latency_ms)
    if seen == "healthy":
        return Assessment(Verdict.HEALTHY)
    if seen == "degraded":
        return Assessment(Verdict.PROBLEM, Problem(DEGRADED, "WARNING"))
    if category == "AUTH":
        # Credentials do not fix themselves: no point waiting for a second failure.
        return Assessment(Verdict.PROBLEM, Problem(AUTH_FAILURE, "CRITICAL"))
    if consecutive_failures >= failure_threshold:
        return Assessment(Verdict.PROBLEM, Problem(UNREACHABLE, "CRITICAL"))
    return Assessment(Verdict.PENDING)


@dataclass(frozen=True)
class Sample:
    """One row of health_check_history."""

    status: str
    latency_ms: int | None
    checked_at: datetime


def healthy_streak(newest_first: Sequence[Sample], degraded_latency_ms: int | None) -> int:
    """How many of the newest checks in a row were healthy (slow ones are not)."""
    streak = 0
    for sample in newest_first:
        if effective_status(sample.status, sample.latency_ms, degraded_latency_ms) != "healthy":
            break
        streak += 1
    return streak


def status_changes(newest_first: Sequence[Sample], since: datetime) -> int:
    """Stored-status changes that happened at or after `since`."""
    changes = 0
    for newer, older in itertools.pairwise(newest_first):
        if newer.checked_at < since:
            break
        if newer.status != older.status:
            changes += 1
    return changes


def is_flapping(changes_in_window: int, flapping_alert_firing: bool) -> bool:
    """Opens above the limit; once open, lasts until a whole window without a change."""
    if flapping_alert_firing:
        return changes_in_window > 0
    return changes_in_window > FLAP_MAX_CHANGES


@dataclass(frozen=True)
class HealthPlan:
    """What to do with one integration's alerts after a check."""

    open: Problem | None = None
    # Firing keys to resolve because the integration recovered (a recovery notice).
    recovered: frozenset[AlertKey] = frozenset()
    # Firing keys to resolve because another problem replaced them (no notice:
    # the new alert's notification says what is wrong now).
    superseded: frozenset[AlertKey] = frozenset()
    flapping: bool = False


def plan_health_alerts(
    assessment: Assessment,
    *,
    firing: frozenset[AlertKey],
    healthy_streak: int,
    recovery_threshold: int,
    changes_in_window: int,
) -> HealthPlan:
    """Thresholds, dedup, kind changes, hysteresis and flapping for one check.

    While the integration flaps, only the flapping alert moves: its other
    alerts are neither opened nor resolved, so a flip is never a notification.
    """
    flapping_firing = FLAPPING in firing
    flapping = is_flapping(changes_in_window, flapping_firing)
    if flapping:
        return HealthPlan(open=Problem(FLAPPING, "WARNING"), flapping=True)
    settled = frozenset({FLAPPING}) if flapping_firing else frozenset()
    health_firing = firing & HEALTH_KEYS
    if assessment.verdict is Verdict.PROBLEM:
        assert assessment.problem is not None
        return HealthPlan(
            open=assessment.problem,
            recovered=settled,
            superseded=health_firing - {assessment.problem.key},
        )
    if assessment.verdict is Verdict.HEALTHY and healthy_streak >= recovery_threshold:
        return HealthPlan(recovered=settled | health_firing)
    return HealthPlan(recovered=settled)


# -- notifications ---------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """The notification side of an alert rule."""

    min_severity: str = "WARNING"
    repeat_interval: timedelta = timedelta(minutes=60)
    notify_on_recovery: bool = True
    silenced_until: datetime | None = None
    group_wait_seconds: int = 30

    def silenced_at(self, now: datetime) -> bool:
        return self.silenced_until is not None and now < self.silenced_until

    def admits(self, severity: str) -> bool:
        return SEVERITY_RANK[severity] >= SEVERITY_RANK[self.min_severity]


def firing_notification_due(
    *,
    severity: str,
    acknowledged: bool,
    last_notified_at: datetime | None,
    policy: Policy,
    now: datetime,
) -> bool:
    """Whether a firing alert (just opened or seen again) should be announced now.

    A silenced or suppressed alert was never announced (`last_notified_at` is
    None): it goes out on the first check after the silence ends. Dismissing
    is not an input: it only hides the alert from the coordinator's inbox;
    acknowledging is what stops repeats.
    """
    if not policy.admits(severity) or policy.silenced_at(now) or acknowledged:
        return False
    if last_notified_at is None:
        return True
    return now - last_notified_at >= policy.repeat_interval


def recovery_notification_due(*, severity: str, policy: Policy) -> bool:
    """Resolutions are told even when the alert was silenced, acknowledged or dismissed,
    so nobody is left with a stale red alert elsewhere; never below minSeverity, which
    was never told in the first place."""
    return policy.notify_on_recovery and policy.admits(severity)


@dataclass(frozen=True)
class Item:
    """One alert transition worth telling an org about."""

    key: str  # deterministic: the alert and its transition, e.g. "alert:<id>:opened"
    alert_id: UUID | None
    integration_type: str
    severity: str
    title: str
    detail: str
    recovery: bool = False
    group_wait_seconds: int = 30


@dataclass(frozen=True)
class Message:
    """One notification (one enqueue): the in-app row and one delivery per channel."""

    idempotency_key: str
    alert_id: UUID | None
    severity: str
    title: str
    body: str
    items: tuple[Item, ...]


def item_key(alert_id: object, transition: str) -> str:
    return f"alert:{alert_id}:{transition}"


def compose(items: Sequence[Item]) -> list[Message]:
    """Group one run's items of one org: one message for everything held for grouping
    (groupWaitSeconds > 0), one message each for the rest (groupWaitSeconds = 0).
    Problems come before recoveries, the most severe first; order and keys do not
    depend on the order items arrived in."""
    ordered = sorted(
        items,
        key=lambda i: (i.recovery, -SEVERITY_RANK[i.severity], i.integration_type, i.title, i.key),
    )
    grouped = [i for i in ordered if i.group_wait_seconds > 0]
    alone = [i for i in ordered if i.group_wait_seconds <= 0]
    messages = [_single(i) for i in alone]
    if len(grouped) == 1:
        messages.append(_single(grouped[0]))
    elif grouped:
        messages.append(_group(grouped))
    return messages


def _single(item: Item) -> Message:
    return Message(item.key, item.alert_id, item.severity, item.title, item.detail, (item,))


def _group(items: Sequence[Item]) -> Message:
    problems = {i.integration_type for i in items if not i.recovery}
    recoveries = {i.integration_type for i in items if i.recovery}
    if len(problems | recoveries) == 1:
        title = items[0].title  # one integration: its most pressing news
    else:
        parts = []
        if problems:
            n = len(problems)
            parts.append(f"{n} integration{_s(n)} need{'' if n != 1 else 's'} attention")
        if recoveries:
            n = len(recoveries)
            parts.append(f"{n} recovered" if problems else f"{n} integration{_s(n)} recovered")
        title = ", ".join(parts)
    body = "\n".join(f"- {i.title}: {i.detail}" for i in items)
    digest = hashlib.sha256("\n".join(sorted(i.key for i in items)).encode()).hexdigest()
    severity = max((i.severity for i in items), key=SEVERITY_RANK.__getitem__)
    alert_ids = {i.alert_id for i in items}
    alert_id = next(iter(alert_ids)) if len(alert_ids) == 1 else None
    return Message(f"group:{digest[:40]}", alert_id, severity, title, body, tuple(items))


def _s(n: int) -> str:
    return "" if n == 1 else "s"


# -- texts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    title: str
    message: str
    guidance: str


def problem_text(
    problem: Problem,
    provider: str,
    *,
    error_message: str | None,
    error_guidance: str | None,
    latency_ms: int | None = None,
    degraded_latency_ms: int | None = None,
    changes_in_window: int = 0,
) -> Text:
    if problem.key == FLAPPING:
        minutes = int(FLAP_WINDOW.total_seconds() // 60)
        return Text(
            f"{provider} keeps changing between states",
            f"{provider} changed status {changes_in_window} times in the last {minutes} minutes.",
            "The connection is unstable. Each change is no longer notified; this alert "
            f"resolves once {provider} stays in one state for {minutes} minutes. If it "
            "lasts, check the provider's status page and the network in between.",
        )
    if problem.key == AUTH_FAILURE:
        return Text(
            f"{provider} rejected the credentials",
            error_message or f"{provider} rejected the credentials.",
            error_guidance
            or f"Check or renew the {provider} credentials in the integration's settings.",
        )
    if problem.key == UNREACHABLE:
        return Text(
            f"{provider} is unreachable",
            error_message or f"{provider} cannot be reached.",
            error_guidance or "The monitor keeps retrying by itself and reports when it recovers.",
        )
    if error_message is None and latency_ms is not None and degraded_latency_ms is not None:
        return Text(
            f"{provider} is slow",
            f"{provider} answered, but slowly: {latency_ms} ms "
            f"(the limit is {degraded_latency_ms} ms).",
            "Exports may be slow or time out. Usually temporary; if it lasts, see the "
            "provider's status page.",
        )
    return Text(
        f"{provider} is degraded",
        error_message or f"{provider} answers, but not fully.",
        error_guidance or "The monitor keeps checking and reports when it recovers.",
    )


def recovery_title(key: AlertKey, provider: str) -> str:
    if key == FLAPPING:
        return f"{provider} is stable again"
    if key == EXPIRING:
        return f"{provider} credentials were renewed"
    if key[0] == "EXPORT_FAILED":
        return f"{provider} exports work again"
    return f"{provider} is working again"


def export_failure_text(
    provider: str, *, idempotency_key: str, error_category: str | None, error_message: str | None
) -> Text:
    if error_category in ("TIMEOUT", "NETWORK"):
        # Both are what the export job saw as "the call never came back": say it plainly.
        return Text(
            f"{provider} export failed: a network timeout",
            f"The export {idempotency_key} to {provider} failed because of a network timeout"
            + (f" ({error_message})" if error_message else "")
            + ".",
            f"Usually temporary: run the export again. If it keeps failing, check "
            f"{provider}'s status page and the network between us and {provider}.",
        )
    if error_category == "AUTH":
        return Text(
            f"{provider} export failed: credentials rejected",
            f"The export {idempotency_key} to {provider} failed: {provider} rejected the "
            "credentials" + (f" ({error_message})" if error_message else "") + ".",
            f"Check or renew the {provider} credentials in the integration's settings, "
            "then run the export again.",
        )
    return Text(
        f"{provider} export failed",
        f"The export {idempotency_key} to {provider} failed"
        + (f": {error_message}" if error_message else "")
        + ".",
        "Look at the export's error, fix its cause and run the export again.",
    )


def outage_text(provider: str) -> Text:
    return Text(
        f"{provider} is having an outage; we are monitoring it",
        f"{provider} is failing for many organizations at once, yours included: the "
        "problem is on the provider's side.",
        "Nothing to change on your side. Exports to this provider may fail until it "
        "recovers; each integration reports its recovery as usual.",
    )


# -- provider-wide incidents ----------------------------------------------------------------


def counts_for_incident(integration_type: str, status: str, category: str | None) -> bool:
    """A failure that says something about the provider rather than about one org."""
    return (
        integration_type not in INCIDENT_EXCLUDED_TYPES
        and status == "unreachable"
        and (category or "UNKNOWN") not in INCIDENT_IGNORED_CATEGORIES
    )


def incident_threshold(orgs_with_provider: int) -> int:
    share = -(-orgs_with_provider * INCIDENT_MIN_SHARE_PERCENT // 100)  # ceil, in integers
    return max(INCIDENT_MIN_ORGS, share)


def incident_opens(*, failing_recently: int, orgs_with_provider: int) -> bool:
    return failing_recently >= incident_threshold(orgs_with_provider)


def incident_resolves(*, failing_now: int, orgs_with_provider: int) -> bool:
    """Counts every org still failing, however long ago it was last checked: checks of a
    failing integration back off, and an outage must not close because they did."""
    return failing_now < incident_threshold(orgs_with_provider)


# -- credential expiry -------------------------------------------------------------------------


def expiring_soon(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now + EXPIRY_WARNING_WINDOW


def expiry_text(provider: str, expires_at: datetime, now: datetime) -> Text:
    date = expires_at.strftime("%Y-%m-%d")
    if expires_at <= now:
        return Text(
            f"{provider} credentials expired on {date}",
            f"The {provider} credentials expired on {date}; checks and exports will fail.",
            f"Renew the {provider} credentials (reconnect or paste new ones) in the "
            "integration's settings.",
        )
    days = (expires_at - now).days
    return Text(
        f"{provider} credentials expire on {date}",
        f"The {provider} credentials expire on {date}, in {days} day{'s' if days != 1 else ''}.",
        f"Renew the {provider} credentials (reconnect or paste new ones) in the "
        "integration's settings before then, so checks and exports keep working.",
    )

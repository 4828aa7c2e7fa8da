"""The alerting engine: turns recorded checks into alerts and notifications.

Everything here runs inside the caller's transaction (the run that recorded
the checks, the export report's job, a cron tick): alerts, in-app
notifications and outbox rows commit together with the status, or not at
all. What to do is decided by the pure functions of `rules`; this module
reads what they need and carries out what they decide.

Notifications are collected in a `Batch` and sent by `flush` as one message
per org (one `enqueue`), so an org whose integrations fail in one run hears
it once. Keys are deterministic (alert id + transition), so a retried job
never notifies twice.

groupWaitSeconds groups within one transaction: the scheduler checks all of
an org's integrations that fall due in one tick in one run, so they share a
message. Alerts of one org raised by *different* runs within the window are
separate messages; they carry the same `groupKey` (`alerts:{org}`) in the
payload so receivers can thread them. Holding them back for the window would
need a deferred flush job and would delay every first alert by the window
(30 s by default); that is not done.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from db import alert_rules, alerts, health, incidents, integration_types
from db.alert_rules import EffectiveRule
from db.alerts import Alert
from db.health import StatusRow
from db.outbox import enqueue
from workers.alerting import rules
from workers.alerting.rules import Item, Message, Policy

# History keeps the newest 96 rows per integration (24 h at 15 min), however
# old: read them all. A recovery threshold above that is capped to it, or it
# could never be met.
HISTORY_LOOKBACK = timedelta(days=365)
HISTORY_ROWS = 96


def group_key(org_id: UUID) -> str:
    """Carried in every alert message of an org, so receivers can thread them."""
    return f"alerts:{org_id}"


def policy_of(rule: EffectiveRule) -> Policy:
    return Policy(
        min_severity=rule.min_severity,
        repeat_interval=timedelta(minutes=rule.repeat_interval_minutes),
        notify_on_recovery=rule.notify_on_recovery,
        silenced_until=rule.silenced_until,
        group_wait_seconds=rule.group_wait_seconds,
    )


@dataclass
class Batch:
    """The notifications and alert changes of one transaction, until `flush`."""

    items: dict[UUID, list[Item]] = field(default_factory=lambda: defaultdict(list))
    # Messages with keys of their own (an incident's outage notice), never grouped.
    notices: list[tuple[UUID, Message]] = field(default_factory=list)
    # Alerts announced by this batch: last_notified_at moves on flush.
    announced: set[UUID] = field(default_factory=set)
    changed: dict[UUID, Alert] = field(default_factory=dict)

    def alert_changed(self, alert: Alert) -> None:
        self.changed[alert.id] = alert

    def announce(self, alert: Alert, item: Item) -> None:
        self.items[alert.org_id].append(item)
        self.announced.add(alert.id)

    def recovered(self, alert: Alert, item: Item) -> None:
        self.items[alert.org_id].append(item)

    def notice(self, org_id: UUID, message: Message) -> None:
        self.notices.append((org_id, message))

    def changed_alerts(self) -> list[Alert]:
        return list(self.changed.values())


async def flush(conn: asyncpg.Connection, batch: Batch, now: datetime) -> list[Alert]:
    """Enqueue the batch (one message per org, per rules.compose) and mark what was
    announced; return every alert the transaction changed, latest state."""
    for org_id in sorted(batch.items):
        for message in rules.compose(batch.items[org_id]):
            await _send(conn, org_id, message, now)
    for org_id, message in sorted(batch.notices, key=lambda n: (n[0], n[1].idempotency_key)):
        await _send(conn, org_id, message, now)
    for alert_id in sorted(batch.announced):
        marked = await alerts.mark_notified(conn, alert_id, now)
        if marked is not None and alert_id in batch.changed:
            batch.changed[alert_id] = marked
    batch.items.clear()
    batch.notices.clear()
    batch.announced.clear()
    return batch.changed_alerts()


async def _send(conn: asyncpg.Connection, org_id: UUID, message: Message, now: datetime) -> None:
    await enqueue(
        conn,
        org_id=org_id,
        alert_id=message.alert_id,
        severity=message.severity,
        title=message.title,
        body=message.body,
        idempotency_key=message.idempotency_key,
        group_key=group_key(org_id),
        now=now,
    )


# integration type -> display name; the catalogue changes only with a migration.
_DISPLAY_NAMES: dict[str, str] = {}


async def display_names(conn: asyncpg.Connection) -> dict[str, str]:
    if not _DISPLAY_NAMES:
        types = await integration_types.list_all(conn)
        _DISPLAY_NAMES.update({t.key: t.display_name for t in types})
    return _DISPLAY_NAMES


def firing_item(alert: Alert, policy: Policy) -> Item:
    transition = "opened" if alert.last_notified_at is None else f"repeat:{alert.occurrences}"
    return Item(
        key=rules.item_key(alert.id, transition),
        alert_id=alert.id,
        integration_type=alert.integration_type,
        severity=alert.severity,
        title=alert.title,
        detail=f"{alert.message} {alert.guidance}".strip(),
        group_wait_seconds=policy.group_wait_seconds,
    )


def recovery_item(alert: Alert, policy: Policy, provider: str) -> Item:
    return Item(
        key=rules.item_key(alert.id, "resolved"),
        alert_id=alert.id,
        integration_type=alert.integration_type,
        severity=alert.severity,
        title=rules.recovery_title((alert.kind, alert.fingerprint), provider),
        detail=f"Resolved: {alert.title}.",
        recovery=True,
        group_wait_seconds=policy.group_wait_seconds,
    )


async def announce_if_due(
    batch: Batch, alert: Alert, policy: Policy, now: datetime, *, suppressed: bool = False
) -> None:
    batch.alert_changed(alert)
    if notification_due(alert, policy, now) and not suppressed:
        batch.announce(alert, firing_item(alert, policy))


def notification_due(alert: Alert, policy: Policy, now: datetime) -> bool:
    """Whether this firing alert should be announced now (rules.firing_notification_due)."""
    return rules.firing_notification_due(
        severity=alert.severity,
        acknowledged=alert.acknowledged_at is not None,
        last_notified_at=alert.last_notified_at,
        policy=policy,
        now=now,
    )


def tell_resolved(batch: Batch, resolved: Sequence[Alert], policy: Policy, provider: str) -> None:
    for alert in resolved:
        batch.alert_changed(alert)
        if rules.recovery_notification_due(severity=alert.severity, policy=policy):
            batch.recovered(alert, recovery_item(alert, policy, provider))


# -- health checks -------------------------------------------------------------------


async def on_recorded(
    conn: asyncpg.Connection, rows: Sequence[StatusRow], now: datetime
) -> list[Alert]:
    """The runner's hook: alerts and notifications for the rows just recorded."""
    if not rows:
        return []
    batch = Batch()
    await process_status_rows(conn, rows, now, batch)
    return await flush(conn, batch, now)


async def process_status_rows(
    conn: asyncpg.Connection, rows: Sequence[StatusRow], now: datetime, batch: Batch
) -> None:
    if not rows:
        return
    names = await display_names(conn)
    effective = await alert_rules.effective_rules(
        conn, [(r.org_id, r.integration_type) for r in rows]
    )
    in_incident = await evaluate_incidents_for(conn, rows, now, batch, names)
    by_org: dict[UUID, list[StatusRow]] = defaultdict(list)
    for row in rows:
        by_org[row.org_id].append(row)
    for org_id in sorted(by_org):
        org_rows = sorted(by_org[org_id], key=lambda r: r.integration_type)
        types = [r.integration_type for r in org_rows]
        active = await alerts.active_for(conn, org_id, types)
        org_rows = [
            r
            for r in org_rows
            if not _nothing_to_do(
                r, effective[(org_id, r.integration_type)], active[r.integration_type]
            )
        ]
        if not org_rows:
            continue
        history = await health.history_many(
            conn,
            org_id,
            [r.integration_type for r in org_rows],
            since=now - HISTORY_LOOKBACK,
            limit=HISTORY_ROWS,
        )
        for row in org_rows:
            await _apply(
                conn,
                row,
                effective[(org_id, row.integration_type)],
                active[row.integration_type],
                [
                    rules.Sample(h.status, h.latency_ms, h.checked_at)
                    for h in history[row.integration_type]
                ],
                names.get(row.integration_type, row.integration_type),
                row.integration_type in in_incident,
                now,
                batch,
            )


def _assess(row: StatusRow, rule: EffectiveRule) -> rules.Assessment:
    return rules.assess(
        status=row.status,
        category=row.error_category,
        latency_ms=row.latency_ms,
        consecutive_failures=row.consecutive_failures,
        failure_threshold=rule.failure_threshold,
        degraded_latency_ms=rule.degraded_latency_ms,
    )


def _nothing_to_do(row: StatusRow, rule: EffectiveRule, active: Sequence[Alert]) -> bool:
    """The common case, decided without reading the history: nothing fires for the
    integration, its status did not change and the check shows no problem.

    Then no plan can come out of `_apply`: nothing can recover or be superseded, no
    problem opens, and flapping cannot start, because the number of changes in the
    window can only have fallen since the previous check (which saw the same changes
    and would have opened it).
    """
    if active or row.flipped:
        return False
    return _assess(row, rule).verdict is not rules.Verdict.PROBLEM


async def _apply(
    conn: asyncpg.Connection,
    row: StatusRow,
    rule: EffectiveRule,
    active: Sequence[Alert],
    history: Sequence[rules.Sample],
    provider: str,
    provider_in_incident: bool,
    now: datetime,
    batch: Batch,
) -> None:
    policy = policy_of(rule)
    firing = frozenset((a.kind, a.fingerprint) for a in active)
    changes = rules.status_changes(history, now - rules.FLAP_WINDOW)
    assessment = _assess(row, rule)
    plan = rules.plan_health_alerts(
        assessment,
        firing=firing,
        healthy_streak=rules.healthy_streak(history, rule.degraded_latency_ms),
        recovery_threshold=min(rule.recovery_threshold, HISTORY_ROWS),
        changes_in_window=changes,
    )
    org_id, integration_type = row.org_id, row.integration_type
    if plan.superseded:
        for alert in await incidents.resolve_alerts(
            conn,
            keys=sorted(plan.superseded),
            org_id=org_id,
            integration_type=integration_type,
            now=now,
        ):
            batch.alert_changed(alert)
    if plan.recovered:
        resolved = await incidents.resolve_alerts(
            conn,
            keys=sorted(plan.recovered),
            org_id=org_id,
            integration_type=integration_type,
            now=now,
        )
        tell_resolved(batch, resolved, policy, provider)
    if plan.open is None:
        return
    text = rules.problem_text(
        plan.open,
        provider,
        error_message=row.error_message if row.status != "healthy" else None,
        error_guidance=row.error_guidance if row.status != "healthy" else None,
        latency_ms=row.latency_ms,
        degraded_latency_ms=rule.degraded_latency_ms,
        changes_in_window=changes,
    )
    alert, _ = await alerts.open_or_repeat(
        conn,
        kind=plan.open.kind,
        severity=plan.open.severity,
        # A slow healthy answer or flapping has no error category of its own.
        category=(
            row.error_category
            if row.status != "healthy" and plan.open.key != rules.FLAPPING
            else None
        ),
        title=text.title,
        message=text.message,
        guidance=text.guidance,
        fingerprint=plan.open.fingerprint,
        org_id=org_id,
        integration_type=integration_type,
        now=now,
    )
    # During a provider-wide outage the org hears "the provider is having an
    # outage" once (evaluate_incidents_for), not this alert.
    suppressed = (
        provider_in_incident
        and plan.open.key == rules.UNREACHABLE
        and rules.counts_for_incident(row.integration_type, row.status, row.error_category)
    )
    await announce_if_due(batch, alert, policy, now, suppressed=suppressed)


# -- provider-wide incidents --------------------------------------------------------------


async def evaluate_incidents_for(
    conn: asyncpg.Connection,
    rows: Sequence[StatusRow],
    now: datetime,
    batch: Batch,
    names: dict[str, str],
) -> set[str]:
    """Open or resolve the incidents of the providers in this run; tell this run's failing
    orgs about open ones. Returns the providers with an incident open now."""
    failing = {
        r.integration_type
        for r in rows
        if rules.counts_for_incident(r.integration_type, r.status, r.error_category)
    }
    candidates = {r.integration_type for r in rows} - rules.INCIDENT_EXCLUDED_TYPES
    if not candidates:
        return set()
    open_now = await incidents.open_for(conn, sorted(candidates))
    to_evaluate = failing | set(open_now)
    if not to_evaluate:
        return set()
    counts = await incidents.provider_failures(
        conn,
        sorted(to_evaluate),
        since=now - rules.INCIDENT_WINDOW,
        ignored_categories=sorted(rules.INCIDENT_IGNORED_CATEGORIES),
        excluded_types=sorted(rules.INCIDENT_EXCLUDED_TYPES),
    )
    for integration_type in sorted(to_evaluate):
        incident = await _evaluate_incident(
            conn,
            integration_type,
            counts.get(integration_type),
            open_now.get(integration_type),
            now,
            batch,
            names,
            observe=False,
        )
        if incident is None:
            open_now.pop(integration_type, None)
        else:
            open_now[integration_type] = incident
    for integration_type, incident in sorted(open_now.items()):
        affected = [
            r.org_id
            for r in rows
            if r.integration_type == integration_type
            and rules.counts_for_incident(r.integration_type, r.status, r.error_category)
        ]
        await tell_affected(conn, incident, affected, now, batch, names)
    return set(open_now)


async def evaluate_all_incidents(
    conn: asyncpg.Connection, now: datetime
) -> tuple[list[incidents.Incident], list[incidents.Incident]]:
    """The cron's pass over every provider (catches what concurrent runs could not see
    of each other): returns the incidents it opened and those it resolved."""
    batch = Batch()
    names = await display_names(conn)
    open_before = await incidents.open_for(conn)
    counts = await incidents.provider_failures(
        conn,
        None,
        since=now - rules.INCIDENT_WINDOW,
        ignored_categories=sorted(rules.INCIDENT_IGNORED_CATEGORIES),
        excluded_types=sorted(rules.INCIDENT_EXCLUDED_TYPES),
    )
    opened, resolved = [], []
    for integration_type in sorted(set(counts) | set(open_before)):
        before = open_before.get(integration_type)
        after = await _evaluate_incident(
            conn,
            integration_type,
            counts.get(integration_type),
            before,
            now,
            batch,
            names,
            observe=True,
        )
        if before is None and after is not None:
            opened.append(after)
        elif before is not None and after is None:
            resolved.append(before)
        if after is not None:
            failing_orgs = await incidents.failing_orgs(
                conn,
                integration_type,
                ignored_categories=sorted(rules.INCIDENT_IGNORED_CATEGORIES),
            )
            await tell_affected(conn, after, failing_orgs, now, batch, names)
    await flush(conn, batch, now)
    return opened, resolved


async def _evaluate_incident(
    conn: asyncpg.Connection,
    integration_type: str,
    counts: incidents.ProviderFailures | None,
    incident: incidents.Incident | None,
    now: datetime,
    batch: Batch,
    names: dict[str, str],
    *,
    observe: bool,
) -> incidents.Incident | None:
    """The provider's incident after this evaluation (None: none open)."""
    orgs = counts.orgs if counts else 0
    failing_now = counts.failing_now if counts else 0
    if incident is None:
        if counts is None or not rules.incident_opens(
            failing_recently=counts.failing_recently, orgs_with_provider=orgs
        ):
            return None
        incident, created = await incidents.open_incident(
            conn,
            integration_type=integration_type,
            now=now,
            orgs_with_provider=orgs,
            failing_orgs=failing_now,
        )
        if created:
            failing_orgs = await incidents.failing_orgs(
                conn,
                integration_type,
                ignored_categories=sorted(rules.INCIDENT_IGNORED_CATEGORIES),
            )
            await tell_affected(conn, incident, failing_orgs, now, batch, names)
        return incident
    if rules.incident_resolves(failing_now=failing_now, orgs_with_provider=orgs):
        await incidents.resolve_incident(conn, incident.id, now)
        return None
    if observe:
        incident = (
            await incidents.observe(
                conn, incident.id, orgs_with_provider=orgs, failing_orgs=failing_now, now=now
            )
            or incident
        )
    return incident


async def tell_affected(
    conn: asyncpg.Connection,
    incident: incidents.Incident,
    org_ids: Sequence[UUID],
    now: datetime,
    batch: Batch,
    names: dict[str, str],
) -> None:
    """Record the orgs as affected; each not told yet (and not silenced) gets the outage
    notice once, keyed by incident and org."""
    if not org_ids:
        return
    await incidents.join(conn, incident.id, org_ids, now)
    effective = await alert_rules.effective_rules(
        conn, [(org, incident.integration_type) for org in sorted(set(org_ids))]
    )
    tellable = [
        org
        for (org, _), rule in effective.items()
        if not rule.silenced_at(now) and policy_of(rule).admits("CRITICAL")
    ]
    provider = names.get(incident.integration_type, incident.integration_type)
    text = rules.outage_text(provider)
    for org in await incidents.claim_notices(conn, incident.id, tellable, now):
        batch.notice(
            org,
            Message(
                idempotency_key=f"incident:{incident.id}:org:{org}",
                alert_id=None,
                severity="CRITICAL",
                title=text.title,
                body=f"{text.message} {text.guidance}",
                items=(),
            ),
        )

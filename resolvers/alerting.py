"""Alerts, notifications, export runs, rules, channels and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from db import alert_rules, alerts, audit, channels, export_runs, notifications, organizations
from db.pagination import Page, decode_cursor
from db.vault import Vault
from resolvers import audit_trail
from resolvers.access import (
    AUDIT,
    CONFIGURE,
    READ,
    REPORT_EXPORTS,
    RESPOND,
    require,
    target_org,
)
from resolvers.errors import BadUserInput, Conflict, Forbidden, NotFound
from resolvers.session import Caller

MAX_PAGE = 200
CHANNEL_KINDS = ("IN_APP", "EMAIL", "WEBHOOK", "APPRISE")


def check_page(first: int, after: str | None) -> None:
    """Refuse a bad page request before any query runs."""
    if not 1 <= first <= MAX_PAGE:
        raise BadUserInput(f"first must be between 1 and {MAX_PAGE}.", field="first")
    if after is not None:
        try:
            decode_cursor(after)
        except ValueError:
            raise BadUserInput("after is not a cursor this API gave out.", field="after") from None


# -- alerts -------------------------------------------------------------------


async def list_alerts(
    caller: Caller, org_id: UUID | None, state: str | None, first: int, after: str | None
) -> Page[alerts.Alert]:
    require(caller.principal, READ, "read alerts")
    check_page(first, after)
    org = target_org(caller.principal, org_id)
    return await caller.as_caller(
        org, lambda c: alerts.list_for_org(c, org, state=state, first=first, after=after)
    )


async def _alert_org(caller: Caller, alert_id: UUID) -> UUID:
    """The org of an alert the caller may see; NOT_FOUND otherwise (no existence leak)."""
    principal = caller.principal
    org: UUID | None
    if principal.is_global_admin:
        org = await caller.as_caller(None, lambda c: alerts.org_of(c, alert_id))
    else:
        alert = await caller.as_caller(principal.org_id, lambda c: alerts.get(c, alert_id))
        org = alert.org_id if alert else None
    if org is None:
        raise NotFound("No such alert.")
    return org


async def respond_to_alert(caller: Caller, alert_id: UUID, action: str) -> alerts.Alert:
    """`acknowledge` or `dismiss` an alert."""
    require(caller.principal, RESPOND, f"{action} alerts")
    org = await _alert_org(caller, alert_id)
    act = alerts.acknowledge if action == "acknowledge" else alerts.dismiss

    async def work(conn: asyncpg.Connection) -> alerts.Alert:
        try:
            updated = await act(conn, alert_id, caller.principal.sub)
        except alerts.AlertResolved:
            raise Conflict("The alert is already resolved.") from None
        if updated is None:
            raise NotFound("No such alert.")
        await audit_trail.record(conn, caller, org, f"{action}Alert", {"alertId": str(alert_id)})
        return updated

    return await caller.as_caller(org, work)


# -- notifications ----------------------------------------------------------------


@dataclass(frozen=True)
class NotificationPage:
    page: Page[notifications.Notification]
    unread_count: int


async def list_notifications(
    caller: Caller, unread_only: bool, first: int, after: str | None
) -> NotificationPage:
    principal = caller.principal
    require(principal, READ, "read notifications")
    check_page(first, after)
    org = target_org(principal, None)

    async def work(conn: asyncpg.Connection) -> NotificationPage:
        page = await notifications.list_for_user(
            conn, org, principal.sub, unread_only=unread_only, first=first, after=after
        )
        return NotificationPage(page, await notifications.unread_count(conn, org, principal.sub))

    return await caller.as_caller(org, work)


async def mark_notification_read(
    caller: Caller, notification_id: UUID
) -> notifications.Notification:
    principal = caller.principal
    # Members read the inbox; marking it read is the coordinator's (DESIGN.md roles).
    require(principal, RESPOND, "mark notifications read")
    org = target_org(principal, None)

    async def work(conn: asyncpg.Connection) -> notifications.Notification:
        found = await notifications.mark_read(conn, notification_id, org, principal.sub)
        if found is None:
            raise NotFound("No such notification.")
        await audit_trail.record(
            conn, caller, org, "markNotificationRead", {"notificationId": str(notification_id)}
        )
        return found

    return await caller.as_caller(org, work)


# -- export runs ----------------------------------------------------------------------


async def list_export_runs(
    caller: Caller, org_id: UUID | None, status: str | None, first: int, after: str | None
) -> Page[export_runs.ExportRun]:
    require(caller.principal, READ, "read export runs")
    check_page(first, after)
    org = target_org(caller.principal, org_id)
    return await caller.as_caller(
        org, lambda c: export_runs.list_for_org(c, org, status=status, first=first, after=after)
    )


async def report_export_run(caller: Caller, data: dict[str, Any]) -> export_runs.ExportRun:
    require(caller.principal, REPORT_EXPORTS, "report export runs")
    org = target_org(caller.principal, data.pop("org_id", None))
    key = data["idempotency_key"].strip()
    if not 1 <= len(key) <= 200:
        raise BadUserInput("idempotencyKey must be 1 to 200 characters.", field="idempotencyKey")
    data["idempotency_key"] = key
    if data["status"] != "FAILED" and (data.get("error_category") or data.get("error_message")):
        raise BadUserInput("Only a FAILED run carries an error.", field="errorCategory")

    async def work(conn: asyncpg.Connection) -> export_runs.ExportRun:
        await organizations.ensure(conn, org)
        try:
            run, _ = await export_runs.report(conn, org_id=org, **data)
        except export_runs.KeyConflict:
            raise Conflict(
                "This idempotencyKey was reported for another integration type."
            ) from None
        except asyncpg.ForeignKeyViolationError:
            raise BadUserInput(
                f"Unknown integration type {data['integration_type']!r}.", field="integrationType"
            ) from None
        await audit_trail.record(
            conn,
            caller,
            org,
            "reportExportRun",
            {
                "integrationType": run.integration_type,
                "idempotencyKey": run.idempotency_key,
                "status": run.status,
            },
        )
        return run

    return await caller.as_caller(org, work)


# -- rules and channels ----------------------------------------------------------------


async def list_rules(caller: Caller, org_id: UUID | None) -> list[alert_rules.AlertRule]:
    require(caller.principal, READ, "read alert rules")
    org = target_org(caller.principal, org_id)
    return await caller.as_caller(org, lambda c: alert_rules.list_for_org(c, org))


async def upsert_rule(caller: Caller, data: dict[str, Any]) -> alert_rules.AlertRule:
    require(caller.principal, CONFIGURE, "configure alert rules")
    org = target_org(caller.principal, data.pop("org_id", None))
    for name, low, high in (
        ("failure_threshold", 1, 100),
        ("repeat_interval_minutes", 1, 7 * 24 * 60),
        ("group_wait_seconds", 0, 3600),
    ):
        if not low <= data[name] <= high:
            field = "".join(p.title() if i else p for i, p in enumerate(name.split("_")))
            raise BadUserInput(f"{field} must be between {low} and {high}.", field=field)
    if data.get("degraded_latency_ms") is not None and data["degraded_latency_ms"] <= 0:
        raise BadUserInput("degradedLatencyMs must be positive.", field="degradedLatencyMs")

    async def work(conn: asyncpg.Connection) -> alert_rules.AlertRule:
        await organizations.ensure(conn, org)
        try:
            rule = await alert_rules.upsert(conn, org_id=org, **data)
        except asyncpg.ForeignKeyViolationError:
            raise BadUserInput(
                f"Unknown integration type {data['integration_type']!r}.", field="integrationType"
            ) from None
        await audit_trail.record(conn, caller, org, "upsertAlertRule", _jsonable(data))
        return rule

    return await caller.as_caller(org, work)


async def list_channels(caller: Caller, org_id: UUID | None) -> list[channels.Channel]:
    require(caller.principal, READ, "read notification channels")
    org = target_org(caller.principal, org_id)
    return await caller.as_caller(org, lambda c: channels.list_for_org(c, org))


async def add_channel(caller: Caller, vault: Vault, data: dict[str, Any]) -> channels.Channel:
    require(caller.principal, CONFIGURE, "configure notification channels")
    org = target_org(caller.principal, data.pop("org_id", None))
    kind, target = data["kind"], data["target"].strip()
    problem = channels.validate_target(kind, target)
    if problem:
        raise BadUserInput(problem, field="target")

    async def work(conn: asyncpg.Connection) -> channels.Channel:
        await organizations.ensure(conn, org)
        channel = await channels.add(
            conn,
            vault,
            org_id=org,
            kind=kind,
            target=target,
            secret=data.get("secret"),
            min_severity=data["min_severity"],
        )
        await audit_trail.record(
            conn,
            caller,
            org,
            "addNotificationChannel",
            {"kind": kind, "target": channel.target_masked},
        )
        return channel

    return await caller.as_caller(org, work)


async def _channel_org(caller: Caller, channel_id: UUID) -> UUID:
    principal = caller.principal
    org: UUID | None
    if principal.is_global_admin:
        org = await caller.as_caller(None, lambda c: channels.org_of(c, channel_id))
    else:
        found = await caller.as_caller(principal.org_id, lambda c: channels.get(c, channel_id))
        org = found.org_id if found else None
    if org is None:
        raise NotFound("No such notification channel.")
    return org


async def remove_channel(caller: Caller, channel_id: UUID) -> bool:
    require(caller.principal, CONFIGURE, "configure notification channels")
    org = await _channel_org(caller, channel_id)

    async def work(conn: asyncpg.Connection) -> bool:
        removed = await channels.remove(conn, channel_id)
        if removed:
            await audit_trail.record(
                conn, caller, org, "removeNotificationChannel", {"channelId": str(channel_id)}
            )
        return removed

    return await caller.as_caller(org, work)


async def channel_for_test(caller: Caller, channel_id: UUID) -> channels.Channel:
    require(caller.principal, CONFIGURE, "test notification channels")
    org = await _channel_org(caller, channel_id)
    found = await caller.as_caller(org, lambda c: channels.get(c, channel_id))
    if found is None:
        raise NotFound("No such notification channel.")
    return found


# -- audit ----------------------------------------------------------------------------------


async def list_audit_events(
    caller: Caller, org_id: UUID | None, first: int, after: str | None
) -> Page[audit.AuditEvent]:
    principal = caller.principal
    require(principal, AUDIT, "read the audit log")
    check_page(first, after)
    org = target_org(principal, org_id)
    if org != principal.org_id and not principal.is_global_admin:
        raise Forbidden("Only a global admin may read another organization's audit log.")
    return await caller.as_caller(
        org, lambda c: audit.list_events(c, org, first=first, after=after)
    )


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}

"""Alerts, notifications, export runs, rules, channels, audit events and their connections."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from db import alert_rules as rules_db
from db import alerts as alerts_db
from db import audit as audit_db
from db import channels as channels_db
from db import export_runs as runs_db
from db import notifications as notifications_db
from db.pagination import Page, encode_cursor
from schema.enums import (
    AlertKind,
    AlertSeverity,
    AlertState,
    ChannelKind,
    ErrorCategory,
    ExportRunStatus,
    Role,
)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


Node = TypeVar("Node")
Row = TypeVar("Row")


# Strawberry names a specialised generic after its argument: Edge[Alert] is the
# contract's AlertEdge, Connection[Alert] its AlertConnection.
@strawberry.type
class Edge(Generic[Node]):
    node: Node
    cursor: str


@strawberry.type
class Connection(Generic[Node]):
    edges: list[Edge[Node]]
    page_info: PageInfo


def connection_parts(
    page: Page[Row], node: Callable[[Row], Node], at: Callable[[Row], tuple[datetime, UUID]]
) -> tuple[list[Edge[Node]], PageInfo]:
    """A page of rows as edges (node and keyset cursor) and its page info."""
    edges = [Edge(node=node(row), cursor=encode_cursor(*at(row))) for row in page.items]
    return edges, PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor)


def connection(
    page: Page[Row], node: Callable[[Row], Node], at: Callable[[Row], tuple[datetime, UUID]]
) -> Connection[Node]:
    edges, info = connection_parts(page, node, at)
    return Connection(edges=edges, page_info=info)


@strawberry.type
class Alert:
    id: UUID
    org_id: UUID
    integration_type: str
    kind: AlertKind
    severity: AlertSeverity
    state: AlertState
    category: ErrorCategory | None
    title: str
    message: str
    guidance: str
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    acknowledged_at: datetime | None
    dismissed_at: datetime | None
    dismissed_by: str | None
    resolved_at: datetime | None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Alert:
        """From the JSON of an alertChanged event (workers/events.py `alert_event`)."""

        def when(name: str) -> datetime | None:
            value = event.get(name)
            return datetime.fromisoformat(value) if value else None

        return cls(
            id=UUID(event["id"]),
            org_id=UUID(event["org_id"]),
            integration_type=event["integration_type"],
            kind=AlertKind(event["kind"]),
            severity=AlertSeverity(event["severity"]),
            state=AlertState(event["state"]),
            category=ErrorCategory(event["category"]) if event.get("category") else None,
            title=event["title"],
            message=event["message"],
            guidance=event["guidance"],
            opened_at=datetime.fromisoformat(event["opened_at"]),
            last_seen_at=datetime.fromisoformat(event["last_seen_at"]),
            occurrences=event["occurrences"],
            acknowledged_at=when("acknowledged_at"),
            dismissed_at=when("dismissed_at"),
            dismissed_by=event.get("dismissed_by"),
            resolved_at=when("resolved_at"),
        )

    @classmethod
    def from_row(cls, row: alerts_db.Alert) -> Alert:
        return cls(
            id=row.id,
            org_id=row.org_id,
            integration_type=row.integration_type,
            kind=AlertKind(row.kind),
            severity=AlertSeverity(row.severity),
            state=AlertState(row.state),
            category=ErrorCategory(row.category) if row.category else None,
            title=row.title,
            message=row.message,
            guidance=row.guidance,
            opened_at=row.opened_at,
            last_seen_at=row.last_seen_at,
            occurrences=row.occurrences,
            acknowledged_at=row.acknowledged_at,
            dismissed_at=row.dismissed_at,
            dismissed_by=row.dismissed_by,
            resolved_at=row.resolved_at,
        )


@strawberry.type
class Notification:
    id: UUID
    alert_id: UUID | None
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def from_row(cls, row: notifications_db.Notification) -> Notification:
        return cls(
            id=row.id,
            alert_id=row.alert_id,
            title=row.title,
            body=row.body,
            created_at=row.created_at,
            read_at=row.read_at,
        )


@strawberry.type
class NotificationConnection:
    edges: list[Edge[Notification]]
    page_info: PageInfo
    unread_count: int

    @classmethod
    def from_page(
        cls, page: Page[notifications_db.Notification], unread_count: int
    ) -> NotificationConnection:
        edges, info = connection_parts(page, Notification.from_row, lambda n: (n.created_at, n.id))
        return cls(edges=edges, page_info=info, unread_count=unread_count)


@strawberry.type
class ExportRun:
    id: UUID
    org_id: UUID
    integration_type: str
    idempotency_key: str = strawberry.field(
        description="Integration + scheduled period, e.g. 'xledger:2026-11-01': reporting the "
        "same key twice updates one run."
    )
    status: ExportRunStatus
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error_category: ErrorCategory | None
    error_message: str | None

    @classmethod
    def from_row(cls, row: runs_db.ExportRun) -> ExportRun:
        return cls(
            id=row.id,
            org_id=row.org_id,
            integration_type=row.integration_type,
            idempotency_key=row.idempotency_key,
            status=ExportRunStatus(row.status),
            scheduled_for=row.scheduled_for,
            started_at=row.started_at,
            finished_at=row.finished_at,
            error_category=ErrorCategory(row.error_category) if row.error_category else None,
            error_message=row.error_message,
        )


@strawberry.type
class AlertRule:
    id: UUID
    org_id: UUID
    integration_type: str | None = strawberry.field(
        description="Null: the rule applies to every integration of the org."
    )
    failure_threshold: int
    degraded_latency_ms: int | None
    repeat_interval_minutes: int
    notify_on_recovery: bool
    min_severity: AlertSeverity
    group_wait_seconds: int
    silenced_until: datetime | None

    @classmethod
    def from_row(cls, row: rules_db.AlertRule) -> AlertRule:
        return cls(
            id=row.id,
            org_id=row.org_id,
            integration_type=row.integration_type,
            failure_threshold=row.failure_threshold,
            degraded_latency_ms=row.degraded_latency_ms,
            repeat_interval_minutes=row.repeat_interval_minutes,
            notify_on_recovery=row.notify_on_recovery,
            min_severity=AlertSeverity(row.min_severity),
            group_wait_seconds=row.group_wait_seconds,
            silenced_until=row.silenced_until,
        )


@strawberry.type
class NotificationChannel:
    id: UUID
    org_id: UUID
    kind: ChannelKind
    target: str = strawberry.field(
        description="Email address, webhook URL or Apprise URL, with any secret part masked."
    )
    min_severity: AlertSeverity
    enabled: bool

    @classmethod
    def from_row(cls, row: channels_db.Channel) -> NotificationChannel:
        return cls(
            id=row.id,
            org_id=row.org_id,
            kind=ChannelKind(row.kind),
            target=row.target_masked,
            min_severity=AlertSeverity(row.min_severity),
            enabled=row.enabled,
        )


@strawberry.type
class AuditEvent:
    id: UUID
    at: datetime
    actor: str
    role: Role
    org_id: UUID | None
    action: str
    details: JSON = strawberry.field(description="Arguments with every secret removed.")

    @classmethod
    def from_row(cls, row: audit_db.AuditEvent) -> AuditEvent:
        return cls(
            id=row.id,
            at=row.at,
            actor=row.actor,
            role=Role(row.role.upper()),
            org_id=row.org_id,
            action=row.action,
            details=JSON(row.details),
        )

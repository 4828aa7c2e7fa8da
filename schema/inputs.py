"""The contract's input types."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from uuid import UUID

import strawberry
from strawberry import UNSET
from strawberry.scalars import JSON

from schema.enums import AlertSeverity, ChannelKind, ErrorCategory, ExportRunStatus, MonitoringMode

T = TypeVar("T")


def opt(value: T | None) -> T | None:
    """UNSET (left out by the client) as None, for layers below the schema."""
    return None if value is UNSET else value


@strawberry.input
class IntegrationInput:
    integration_type: str
    org_id: UUID | None = UNSET
    enabled: bool | None = True
    monitoring_mode: MonitoringMode | None = MonitoringMode.ACTIVE
    check_interval_seconds: int | None = strawberry.field(
        default=UNSET,
        description="Left out: the type's default. Below the type's minIntervalSeconds: "
        "BAD_USER_INPUT.",
    )
    config: JSON | None = strawberry.field(
        default=UNSET,
        description="Non-sensitive configuration; validated against the adapter's own config type.",
    )


@strawberry.input
class AlertRuleInput:
    org_id: UUID | None = UNSET
    integration_type: str | None = UNSET
    failure_threshold: int | None = 2
    degraded_latency_ms: int | None = UNSET
    repeat_interval_minutes: int | None = 60
    notify_on_recovery: bool | None = True
    min_severity: AlertSeverity | None = AlertSeverity.WARNING
    group_wait_seconds: int | None = 30
    silenced_until: datetime | None = UNSET


@strawberry.input
class NotificationChannelInput:
    org_id: UUID | None = UNSET
    kind: ChannelKind
    target: str
    secret: str | None = strawberry.field(
        default=UNSET, description="Webhook signing secret (HMAC-SHA256); write-only."
    )
    min_severity: AlertSeverity | None = AlertSeverity.WARNING


@strawberry.input
class ExportRunInput:
    org_id: UUID | None = UNSET
    integration_type: str
    idempotency_key: str
    status: ExportRunStatus
    scheduled_for: datetime | None = UNSET
    started_at: datetime | None = UNSET
    finished_at: datetime | None = UNSET
    error_category: ErrorCategory | None = UNSET
    error_message: str | None = UNSET

"""Integration, health, history and trend types."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from db import health as health_db
from db import integration_types as types_db
from db import integrations as integrations_db
from db import trends as trends_db
from resolvers.errors import BadUserInput
from schema.context import Info
from schema.enums import (
    CONNECTION_STATE,
    CheckTrigger,
    ConnectionState,
    ErrorCategory,
    HealthStatus,
    MonitoringMode,
    RecoveryAction,
    Role,
    TrendWindow,
    health_status,
)

if TYPE_CHECKING:
    from schema.types.alerts import Alert

MAX_HISTORY = 96


@strawberry.type(description="One row of the integration_types lookup table.")
class IntegrationType:
    key: str
    display_name: str
    category: str
    auth_kind: str
    default_interval_seconds: int
    min_interval_seconds: int
    docs_url: str | None

    @classmethod
    def from_row(cls, row: types_db.IntegrationType) -> IntegrationType:
        return cls(
            key=row.key,
            display_name=row.display_name,
            category=row.category,
            auth_kind=row.auth_kind,
            default_interval_seconds=row.default_interval_seconds,
            min_interval_seconds=row.min_interval_seconds,
            docs_url=row.docs_url,
        )


@strawberry.type
class HealthError:
    category: ErrorCategory
    message: str = strawberry.field(
        description="What went wrong, in words a coordinator understands."
    )
    guidance: str = strawberry.field(description="What to do about it.")
    recovery_action: RecoveryAction
    docs_url: str | None


@strawberry.type
class HealthCheckRecord:
    status: HealthStatus
    latency_ms: int | None
    checked_at: datetime
    error_category: ErrorCategory | None
    error_message: str | None
    trigger: CheckTrigger

    @classmethod
    def from_row(cls, row: health_db.HistoryRow) -> HealthCheckRecord:
        return cls(
            status=health_status(row.status),
            latency_ms=row.latency_ms,
            checked_at=row.checked_at,
            error_category=ErrorCategory(row.error_category) if row.error_category else None,
            error_message=row.error_message,
            trigger=CheckTrigger(row.trigger.upper()),
        )


@strawberry.type
class TrendBucket:
    start: datetime
    checks: int
    healthy: int
    degraded: int
    unreachable: int
    avg_latency_ms: float | None
    p95_latency_ms: float | None


@strawberry.type
class HealthTrend:
    window: TrendWindow
    bucket_seconds: int
    buckets: list[TrendBucket] = strawberry.field(description="Oldest first.")
    checks: int
    uptime_ratio: float | None = strawberry.field(
        description="healthy checks / all checks in the window; null when there were none."
    )
    avg_latency_ms: float | None
    p95_latency_ms: float | None

    @classmethod
    def from_trend(cls, trend: trends_db.Trend) -> HealthTrend:
        return cls(
            window=TrendWindow(trend.window),
            bucket_seconds=trend.bucket_seconds,
            buckets=[
                TrendBucket(
                    start=b.start,
                    checks=b.checks,
                    healthy=b.healthy,
                    degraded=b.degraded,
                    unreachable=b.unreachable,
                    avg_latency_ms=b.avg_latency_ms,
                    p95_latency_ms=b.p95_latency_ms,
                )
                for b in trend.buckets
            ],
            checks=trend.checks,
            uptime_ratio=trend.uptime_ratio,
            avg_latency_ms=trend.avg_latency_ms,
            p95_latency_ms=trend.p95_latency_ms,
        )


def check_history_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_HISTORY:
        raise BadUserInput(f"limit must be between 1 and {MAX_HISTORY}.", field="limit")


@strawberry.type
class IntegrationHealth:
    integration_id: UUID
    org_id: UUID
    integration_type: str
    display_name: str = strawberry.field(
        description="From integration_types: present even when the integration was never checked."
    )
    enabled: bool
    status: HealthStatus
    connection_state: ConnectionState
    latency_ms: int | None
    checked_at: datetime | None
    last_success_at: datetime | None
    status_since: datetime | None = strawberry.field(description="When the current status began.")
    consecutive_failures: int
    next_check_at: datetime | None
    error: HealthError | None = strawberry.field(description="Null when HEALTHY or UNKNOWN.")

    @strawberry.field(description="Newest first; at most 96 rows are kept per integration.")
    async def history(self, info: Info, limit: int = MAX_HISTORY) -> list[HealthCheckRecord]:
        check_history_limit(limit)
        rows = await info.context.loaders.history.load((self.org_id, self.integration_type, None))
        return [HealthCheckRecord.from_row(r) for r in rows[:limit]]

    @strawberry.field
    async def trend(
        self, info: Info, window: TrendWindow = TrendWindow.LAST_24_HOURS
    ) -> HealthTrend:
        found = await info.context.loaders.trend.load(
            (self.org_id, self.integration_type, window.value)
        )
        return HealthTrend.from_trend(found)

    @strawberry.field(
        description="Firing alerts, dismissed ones included: dismissal never hides an "
        "unresolved failure."
    )
    async def active_alerts(
        self, info: Info
    ) -> list[Annotated[Alert, strawberry.lazy("schema.types.alerts")]]:
        from schema.types.alerts import Alert

        rows = await info.context.loaders.active_alerts.load((self.org_id, self.integration_type))
        return [Alert.from_row(r) for r in rows]

    @classmethod
    def from_row(cls, row: health_db.IntegrationHealthRow) -> IntegrationHealth:
        status = health_status(row.status)
        error = None
        if status not in (HealthStatus.HEALTHY, HealthStatus.UNKNOWN) and row.error_category:
            error = HealthError(
                category=ErrorCategory(row.error_category),
                message=row.error_message or "",
                guidance=row.error_guidance or "",
                recovery_action=RecoveryAction(row.recovery_action or "CONTACT_SUPPORT"),
                docs_url=row.docs_url,
            )
        return cls(
            integration_id=row.integration_id,
            org_id=row.org_id,
            integration_type=row.integration_type,
            display_name=row.display_name,
            enabled=row.enabled,
            status=status,
            connection_state=CONNECTION_STATE[status],
            latency_ms=row.latency_ms,
            checked_at=row.checked_at,
            last_success_at=row.last_success_at,
            status_since=row.status_since,
            consecutive_failures=row.consecutive_failures,
            next_check_at=row.next_check_at,
            error=error,
        )

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> IntegrationHealth:
        """From the health snapshot a StatusChange event carries (see workers/events.py)."""
        status = HealthStatus(snapshot["status"])
        raw_error = snapshot.get("error")
        error = (
            HealthError(
                category=ErrorCategory(raw_error["category"]),
                message=raw_error.get("message") or "",
                guidance=raw_error.get("guidance") or "",
                recovery_action=RecoveryAction(
                    raw_error.get("recoveryAction") or "CONTACT_SUPPORT"
                ),
                docs_url=raw_error.get("docsUrl"),
            )
            if raw_error
            else None
        )
        return cls(
            integration_id=UUID(snapshot["integrationId"]),
            org_id=UUID(snapshot["orgId"]),
            integration_type=snapshot["integrationType"],
            display_name=snapshot["displayName"],
            enabled=snapshot["enabled"],
            status=status,
            connection_state=ConnectionState(snapshot["connectionState"]),
            latency_ms=snapshot.get("latencyMs"),
            checked_at=_dt(snapshot.get("checkedAt")),
            last_success_at=_dt(snapshot.get("lastSuccessAt")),
            status_since=_dt(snapshot.get("statusSince")),
            consecutive_failures=snapshot.get("consecutiveFailures", 0),
            next_check_at=_dt(snapshot.get("nextCheckAt")),
            error=error,
        )


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@strawberry.type
class Integration:
    id: UUID
    org_id: UUID
    type_: IntegrationType = strawberry.field(name="type")
    enabled: bool
    monitoring_mode: MonitoringMode
    check_interval_seconds: int
    config: JSON = strawberry.field(
        description="Non-sensitive configuration only (base URL, tenant, company...). "
        "Never credentials."
    )
    has_credentials: bool

    @strawberry.field
    async def health(self, info: Info) -> IntegrationHealth:
        row = await info.context.loaders.health.load((self.org_id, self.type_.key))
        return IntegrationHealth.from_row(row)

    @classmethod
    def build(
        cls,
        row: integrations_db.Integration,
        kind: types_db.IntegrationType,
        *,
        has_credentials: bool,
    ) -> Integration:
        return cls(
            id=row.id,
            org_id=row.org_id,
            type_=IntegrationType.from_row(kind),
            enabled=row.enabled,
            monitoring_mode=MonitoringMode(row.monitoring_mode),
            check_interval_seconds=row.check_interval_seconds,
            config=JSON(row.config),
            has_credentials=has_credentials,
        )


@strawberry.type
class CheckRun:
    job_id: str = strawberry.field(
        description="arq job id; two runCheck calls for one integration while a check is "
        "in flight share it."
    )
    integration_type: str
    enqueued_at: datetime
    result: IntegrationHealth | None = strawberry.field(
        description="Present when wait was true and the check finished (within 12 s)."
    )


@strawberry.type
class StatusChange:
    org_id: UUID
    integration_type: str
    previous_status: HealthStatus
    status: HealthStatus
    changed_at: datetime
    health: IntegrationHealth

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> StatusChange:
        return cls(
            org_id=UUID(event["orgId"]),
            integration_type=event["integrationType"],
            previous_status=HealthStatus(event["previousStatus"]),
            status=HealthStatus(event["status"]),
            changed_at=datetime.fromisoformat(event["changedAt"]),
            health=IntegrationHealth.from_snapshot(event["health"]),
        )


@strawberry.type
class Viewer:
    user_id: str
    org_id: UUID | None
    role: Role

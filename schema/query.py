"""The Query root: each field authorizes and reads through resolvers/, then maps to types."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import strawberry
from strawberry import UNSET

from db import integration_types
from resolvers import alerting, health, integrations
from schema.context import Info
from schema.enums import AlertState, ExportRunStatus, Role
from schema.inputs import opt
from schema.types.admin import GlobalHealthSummary, SchedulerStats
from schema.types.alerts import (
    Alert,
    AlertRule,
    AuditEvent,
    Connection,
    ExportRun,
    NotificationChannel,
    NotificationConnection,
    connection,
)
from schema.types.health import (
    HealthCheckRecord,
    Integration,
    IntegrationHealth,
    IntegrationType,
    Viewer,
)


@strawberry.type
class Query:
    @strawberry.field
    def viewer(self, info: Info) -> Viewer:
        principal = info.context.principal
        return Viewer(
            user_id=principal.sub, org_id=principal.org_id, role=Role(principal.role.upper())
        )

    @strawberry.field
    async def integration_types(self, info: Info) -> list[IntegrationType]:
        principal = info.context.principal  # any authenticated caller
        rows = await info.context.as_caller(principal.org_id, integration_types.list_all)
        return [IntegrationType.from_row(r) for r in rows]

    @strawberry.field
    async def integrations(self, info: Info, org_id: UUID | None = UNSET) -> list[Integration]:
        rows = await integrations.list_integrations(info.context, opt(org_id))
        return [Integration.build(row, kind, has_credentials=has) for row, kind, has in rows]

    @strawberry.field(
        description="Every configured integration of the org, with its current health."
    )
    async def org_health(self, info: Info, org_id: UUID | None = UNSET) -> list[IntegrationHealth]:
        return [
            IntegrationHealth.from_row(r)
            for r in await health.org_health(info.context, opt(org_id))
        ]

    @strawberry.field
    async def integration_health(
        self, info: Info, integration_type: str, org_id: UUID | None = UNSET
    ) -> IntegrationHealth | None:
        row = await health.integration_health(info.context, integration_type, opt(org_id))
        return IntegrationHealth.from_row(row) if row else None

    @strawberry.field(
        description="History rows within the last `hours`, newest first (at most 96)."
    )
    async def health_trend(
        self, info: Info, integration_type: str, hours: int = 24, org_id: UUID | None = UNSET
    ) -> list[HealthCheckRecord]:
        rows = await health.health_trend(info.context, integration_type, hours, opt(org_id))
        return [HealthCheckRecord.from_row(r) for r in rows]

    @strawberry.field
    async def alerts(
        self,
        info: Info,
        org_id: UUID | None = UNSET,
        state: AlertState | None = UNSET,
        first: int = 50,
        after: str | None = UNSET,
    ) -> Connection[Alert]:
        page = await alerting.list_alerts(
            info.context, opt(org_id), state.value if state else None, first, opt(after)
        )
        return connection(page, Alert.from_row, lambda a: (a.opened_at, a.id))

    @strawberry.field
    async def notifications(
        self, info: Info, unread_only: bool = False, first: int = 50, after: str | None = UNSET
    ) -> NotificationConnection:
        found = await alerting.list_notifications(info.context, unread_only, first, opt(after))
        return NotificationConnection.from_page(found.page, found.unread_count)

    @strawberry.field
    async def export_runs(
        self,
        info: Info,
        org_id: UUID | None = UNSET,
        status: ExportRunStatus | None = UNSET,
        first: int = 50,
        after: str | None = UNSET,
    ) -> Connection[ExportRun]:
        page = await alerting.list_export_runs(
            info.context, opt(org_id), status.value if status else None, first, opt(after)
        )
        return connection(page, ExportRun.from_row, lambda r: (r.created_at, r.id))

    @strawberry.field
    async def alert_rules(self, info: Info, org_id: UUID | None = UNSET) -> list[AlertRule]:
        return [AlertRule.from_row(r) for r in await alerting.list_rules(info.context, opt(org_id))]

    @strawberry.field
    async def notification_channels(
        self, info: Info, org_id: UUID | None = UNSET
    ) -> list[NotificationChannel]:
        rows = await alerting.list_channels(info.context, opt(org_id))
        return [NotificationChannel.from_row(r) for r in rows]

    @strawberry.field(description="GLOBAL_ADMIN only.")
    async def global_health_summary(self, info: Info) -> GlobalHealthSummary:
        counts, scheduler = await health.global_counts(info.context)
        return GlobalHealthSummary(
            generated_at=datetime.now(UTC),
            organizations=counts.organizations,
            integrations=counts.integrations,
            healthy=counts.healthy,
            degraded=counts.degraded,
            unreachable=counts.unreachable,
            unknown=counts.unknown,
            scheduler=SchedulerStats(
                late_runs_24h=scheduler.late_runs,
                p50_drift_seconds=scheduler.p50_drift_seconds,
                max_drift_seconds=scheduler.max_drift_seconds,
            ),
        )

    @strawberry.field(description="ORG_ADMIN (own org) or GLOBAL_ADMIN.")
    async def audit_events(
        self, info: Info, org_id: UUID | None = UNSET, first: int = 50, after: str | None = UNSET
    ) -> Connection[AuditEvent]:
        page = await alerting.list_audit_events(info.context, opt(org_id), first, opt(after))
        return connection(page, AuditEvent.from_row, lambda e: (e.at, e.id))

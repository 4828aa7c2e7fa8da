"""System-wide figures for global admins, read through SECURITY DEFINER functions."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import strawberry

from db import admin as admin_db
from db import incidents as incidents_db
from db import trends
from resolvers.errors import BadUserInput
from schema.context import Info
from schema.enums import TrendWindow
from schema.types.health import IntegrationHealth

MAX_UNHEALTHY = 500


@strawberry.type
class ProviderStats:
    integration_type: str
    display_name: str
    integrations: int
    healthy: int
    degraded: int
    unreachable: int
    unknown: int
    checks: int
    success_rate: float | None
    avg_latency_ms: float | None
    p95_latency_ms: float | None

    @classmethod
    def from_row(cls, row: admin_db.ProviderStats) -> ProviderStats:
        return cls(
            integration_type=row.integration_type,
            display_name=row.display_name,
            integrations=row.integrations,
            healthy=row.healthy,
            degraded=row.degraded,
            unreachable=row.unreachable,
            unknown=row.unknown,
            checks=row.checks,
            success_rate=row.success_rate,
            avg_latency_ms=row.avg_latency_ms,
            p95_latency_ms=row.p95_latency_ms,
        )


@strawberry.type
class SchedulerStats:
    late_runs_24h: int = strawberry.field(
        name="lateRuns24h",
        description="Checks that started more than 5 minutes after their scheduled time, in "
        "the last 24 hours.",
    )
    p50_drift_seconds: float | None
    max_drift_seconds: float | None


@strawberry.type
class GlobalHealthSummary:
    generated_at: datetime
    organizations: int
    integrations: int
    healthy: int
    degraded: int
    unreachable: int
    unknown: int
    scheduler: SchedulerStats

    @strawberry.field
    async def providers(
        self, info: Info, window: TrendWindow = TrendWindow.LAST_24_HOURS
    ) -> list[ProviderStats]:
        since = self.generated_at - trends.WINDOWS[window.value][0]
        rows = await info.context.as_caller(None, lambda c: admin_db.provider_stats(c, since))
        return [ProviderStats.from_row(r) for r in rows]

    @strawberry.field(
        description="Provider-wide incidents, newest first (an addition to the contract)."
    )
    async def provider_incidents(
        self, info: Info, open_only: bool = False, limit: int = 50
    ) -> list[ProviderIncident]:
        if not 1 <= limit <= MAX_UNHEALTHY:
            raise BadUserInput(f"limit must be between 1 and {MAX_UNHEALTHY}.", field="limit")
        rows = await info.context.as_caller(
            None, lambda c: incidents_db.list_global(c, open_only=open_only, limit=limit)
        )
        return [ProviderIncident.from_row(r) for r in rows]

    @strawberry.field(description="Worst first.")
    async def unhealthy_integrations(self, info: Info, limit: int = 50) -> list[IntegrationHealth]:
        if not 1 <= limit <= MAX_UNHEALTHY:
            raise BadUserInput(f"limit must be between 1 and {MAX_UNHEALTHY}.", field="limit")
        rows = await info.context.as_caller(
            None, lambda c: admin_db.unhealthy_integrations(c, limit)
        )
        return [IntegrationHealth.from_row(r) for r in rows]


@strawberry.type(description="One provider failing for many organizations at once.")
class ProviderIncident:
    id: UUID
    integration_type: str
    display_name: str
    open: bool
    opened_at: datetime
    resolved_at: datetime | None
    orgs_with_provider: int
    failing_orgs: int
    peak_failing_orgs: int
    affected_orgs: int

    @classmethod
    def from_row(cls, row: incidents_db.IncidentSummary) -> ProviderIncident:
        return cls(
            id=row.id,
            integration_type=row.integration_type,
            display_name=row.display_name,
            open=row.state == "OPEN",
            opened_at=row.opened_at,
            resolved_at=row.resolved_at,
            orgs_with_provider=row.orgs_with_provider,
            failing_orgs=row.failing_orgs,
            peak_failing_orgs=row.peak_failing_orgs,
            affected_orgs=row.affected_orgs,
        )


@strawberry.type
class ReauthorizationLink:
    authorization_url: str
    state: str
    expires_at: datetime


DAY = timedelta(hours=24)

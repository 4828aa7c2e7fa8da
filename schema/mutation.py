"""The Mutation root."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import strawberry
from strawberry import UNSET
from strawberry.scalars import JSON

from resolvers import alerting, checks, integrations, recovery
from resolvers.checks import CheckTicket
from schema.context import Info
from schema.inputs import (
    AlertRuleInput,
    ExportRunInput,
    IntegrationInput,
    NotificationChannelInput,
    opt,
)
from schema.types.admin import ReauthorizationLink
from schema.types.alerts import Alert, AlertRule, ExportRun, Notification, NotificationChannel
from schema.types.health import CheckRun, Integration, IntegrationHealth
from workers.alerting.jobs import export_run_job_id
from workers.events import publish_alert_events


def _check_run(ticket: CheckTicket) -> CheckRun:
    return CheckRun(
        job_id=ticket.job_id,
        integration_type=ticket.integration_type,
        enqueued_at=ticket.enqueued_at,
        result=IntegrationHealth.from_snapshot(ticket.health) if ticket.health else None,
    )


def _value(enum_or_none: Any) -> Any:
    return enum_or_none.value if enum_or_none is not None else None


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="COORDINATOR and above, SERVICE. Rate limited per integration and per "
        "caller (RATE_LIMITED)."
    )
    async def run_check(
        self, info: Info, integration_type: str, org_id: UUID | None = UNSET, wait: bool = True
    ) -> CheckRun:
        services = info.context.services
        ticket = await checks.run_check(
            info.context,
            queue=services.queue,
            settings=services.settings,
            integration_type=integration_type,
            org_id=opt(org_id),
            wait=wait,
        )
        return _check_run(ticket)

    @strawberry.mutation
    async def run_org_checks(
        self, info: Info, org_id: UUID | None = UNSET, wait: bool = True
    ) -> list[CheckRun]:
        services = info.context.services
        tickets = await checks.run_org_checks(
            info.context,
            queue=services.queue,
            settings=services.settings,
            org_id=opt(org_id),
            wait=wait,
        )
        return [_check_run(t) for t in tickets]

    @strawberry.mutation(description="ORG_ADMIN and above.")
    async def upsert_integration(self, info: Info, input: IntegrationInput) -> Integration:
        row, kind, has = await integrations.upsert_integration(
            info.context,
            integration_type=input.integration_type,
            org_id=opt(input.org_id),
            enabled=True if input.enabled is None else input.enabled,
            monitoring_mode=_value(input.monitoring_mode) or "ACTIVE",
            check_interval_seconds=opt(input.check_interval_seconds),
            config=opt(input.config),
        )
        return Integration.build(row, kind, has_credentials=has)

    @strawberry.mutation
    async def set_integration_enabled(
        self, info: Info, integration_type: str, enabled: bool, org_id: UUID | None = UNSET
    ) -> Integration:
        row, kind, has = await integrations.set_enabled(
            info.context, integration_type, enabled, opt(org_id)
        )
        return Integration.build(row, kind, has_credentials=has)

    @strawberry.mutation(description="Write-only: stored encrypted, never returned, never logged.")
    async def set_integration_credentials(
        self, info: Info, integration_type: str, credentials: JSON, org_id: UUID | None = UNSET
    ) -> Integration:
        row, kind, has = await integrations.set_credentials(
            info.context, info.context.services.vault, integration_type, credentials, opt(org_id)
        )
        return Integration.build(row, kind, has_credentials=has)

    @strawberry.mutation
    async def remove_integration(
        self, info: Info, integration_type: str, org_id: UUID | None = UNSET
    ) -> bool:
        return await integrations.remove_integration(info.context, integration_type, opt(org_id))

    @strawberry.mutation
    async def start_reauthorization(
        self, info: Info, integration_type: str, redirect_uri: str, org_id: UUID | None = UNSET
    ) -> ReauthorizationLink:
        services = info.context.services
        link = await recovery.start_reauthorization(
            info.context,
            services.vault,
            services.settings,
            integration_type,
            redirect_uri,
            opt(org_id),
        )
        return ReauthorizationLink(
            authorization_url=link.authorization_url, state=link.state, expires_at=link.expires_at
        )

    @strawberry.mutation(description="COORDINATOR and above.")
    async def acknowledge_alert(self, info: Info, alert_id: UUID) -> Alert:
        alert = await alerting.respond_to_alert(info.context, alert_id, "acknowledge")
        await publish_alert_events(info.context.services.redis, [alert])
        return Alert.from_row(alert)

    @strawberry.mutation(
        description="Hides the alert from the coordinator's inbox; it stays in activeAlerts "
        "and history until resolved."
    )
    async def dismiss_alert(self, info: Info, alert_id: UUID) -> Alert:
        alert = await alerting.respond_to_alert(info.context, alert_id, "dismiss")
        await publish_alert_events(info.context.services.redis, [alert])
        return Alert.from_row(alert)

    @strawberry.mutation
    async def mark_notification_read(self, info: Info, id: UUID) -> Notification:
        return Notification.from_row(await alerting.mark_notification_read(info.context, id))

    @strawberry.mutation(description="ORG_ADMIN and above.")
    async def upsert_alert_rule(self, info: Info, input: AlertRuleInput) -> AlertRule:
        defaults = AlertRuleInput()
        rule = await alerting.upsert_rule(
            info.context,
            {
                "org_id": opt(input.org_id),
                "integration_type": opt(input.integration_type),
                "failure_threshold": _or(input.failure_threshold, defaults.failure_threshold),
                "degraded_latency_ms": opt(input.degraded_latency_ms),
                "repeat_interval_minutes": _or(
                    input.repeat_interval_minutes, defaults.repeat_interval_minutes
                ),
                "notify_on_recovery": _or(input.notify_on_recovery, defaults.notify_on_recovery),
                "min_severity": _value(_or(input.min_severity, defaults.min_severity)),
                "group_wait_seconds": _or(input.group_wait_seconds, defaults.group_wait_seconds),
                "silenced_until": opt(input.silenced_until),
            },
        )
        return AlertRule.from_row(rule)

    @strawberry.mutation
    async def add_notification_channel(
        self, info: Info, input: NotificationChannelInput
    ) -> NotificationChannel:
        channel = await alerting.add_channel(
            info.context,
            info.context.services.vault,
            {
                "org_id": opt(input.org_id),
                "kind": input.kind.value,
                "target": input.target,
                "secret": opt(input.secret),
                "min_severity": _value(input.min_severity) or "WARNING",
            },
        )
        return NotificationChannel.from_row(channel)

    @strawberry.mutation
    async def remove_notification_channel(self, info: Info, id: UUID) -> bool:
        return await alerting.remove_channel(info.context, id)

    @strawberry.mutation(
        description="Sends a test message through the channel; true when it was delivered."
    )
    async def test_notification_channel(self, info: Info, id: UUID) -> bool:
        services = info.context.services
        return await recovery.test_channel(info.context, services.queue, id)

    @strawberry.mutation(
        description="SERVICE (the export job), ORG_ADMIN and above. A FAILED run notifies the "
        "org's coordinators."
    )
    async def report_export_run(self, info: Info, input: ExportRunInput) -> ExportRun:
        run = await alerting.report_export_run(
            info.context,
            {
                "org_id": opt(input.org_id),
                "integration_type": input.integration_type,
                "idempotency_key": input.idempotency_key,
                "status": input.status.value,
                "scheduled_for": opt(input.scheduled_for),
                "started_at": opt(input.started_at),
                "finished_at": opt(input.finished_at),
                "error_category": _value(opt(input.error_category)),
                "error_message": opt(input.error_message),
            },
        )
        # The worker raises EXPORT_FAILED alerts and passive health (the API role may not).
        await info.context.services.queue.enqueue_job(
            "export_run_reported",
            str(run.org_id),
            str(run.id),
            _job_id=export_run_job_id(run.id, run.updated_at),
        )
        return ExportRun.from_row(run)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value

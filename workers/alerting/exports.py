"""Export runs reported by integrators: EXPORT_FAILED alerts, and health for PASSIVE mode.

The API stores the report (`reportExportRun`) and enqueues `export_run_reported`;
the API role may not write alerts, so this runs in the worker as the service
role, in one transaction: the alert, the notification and (for a PASSIVE
integration) the check result derived from the export commit together.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from db import alert_rules, alerts, health, incidents, integrations
from db.alerts import Alert
from db.export_runs import ExportRun
from db.health import CheckRecord
from workers.alerting import engine, rules
from workers.checks import ADAPTERS, guidance
from workers.checks.guidance import Provider
from workers.checks.result import RecoveryAction

EXPORT_FAILED = "EXPORT_FAILED"
# An export failing for these reasons says the connection is down, as a check would.
PASSIVE_FAILURE_CATEGORIES = frozenset({"NETWORK", "TIMEOUT", "AUTH"})


async def handle_export_run(
    conn: asyncpg.Connection, org_id: UUID, run_id: UUID, now: datetime
) -> list[Alert]:
    """Alerts and notifications for the run's current state; returns the alerts changed.

    Safe to run twice for one report: a failure already counted (the alert was
    seen at or after the run's last report) is not counted again.
    """
    run = await incidents.export_run(conn, org_id, run_id)
    if run is None or run.status not in ("FAILED", "SUCCEEDED"):
        return []
    names = await engine.display_names(conn)
    provider = names.get(run.integration_type, run.integration_type)
    rule = await alert_rules.effective_rule(conn, org_id, run.integration_type)
    policy = engine.policy_of(rule)
    batch = engine.Batch()
    if run.status == "FAILED":
        await _failed(conn, run, provider, policy, now, batch)
    else:
        resolved = await alerts.resolve(
            conn,
            org_id=org_id,
            integration_type=run.integration_type,
            kinds=[EXPORT_FAILED],
            now=now,
        )
        engine.tell_resolved(batch, resolved, policy, provider)
    await _passive_health(conn, run, provider, now, batch)
    return await engine.flush(conn, batch, now)


async def _failed(
    conn: asyncpg.Connection,
    run: ExportRun,
    provider: str,
    policy: rules.Policy,
    now: datetime,
    batch: engine.Batch,
) -> None:
    active = (await alerts.active_for(conn, run.org_id, [run.integration_type]))[
        run.integration_type
    ]
    counted = next(
        (
            a
            for a in active
            if a.kind == EXPORT_FAILED
            and a.fingerprint == run.idempotency_key
            and a.last_seen_at >= run.updated_at
        ),
        None,
    )
    if counted is not None:
        return
    text = rules.export_failure_text(
        provider,
        idempotency_key=run.idempotency_key,
        error_category=run.error_category,
        error_message=run.error_message,
    )
    alert, _ = await alerts.open_or_repeat(
        conn,
        org_id=run.org_id,
        integration_type=run.integration_type,
        kind=EXPORT_FAILED,
        severity="CRITICAL",
        category=run.error_category,
        title=text.title,
        message=text.message,
        guidance=text.guidance,
        fingerprint=run.idempotency_key,
        # When it was reported: a job run twice finds the failure already counted.
        now=run.updated_at,
    )
    await engine.announce_if_due(batch, alert, policy, now)


async def _passive_health(
    conn: asyncpg.Connection,
    run: ExportRun,
    provider: str,
    now: datetime,
    batch: engine.Batch,
) -> None:
    """In PASSIVE mode nothing pings the provider: the export's outcome is its health."""
    integration = await integrations.get(conn, run.org_id, run.integration_type)
    if integration is None or not integration.enabled or integration.monitoring_mode != "PASSIVE":
        return
    record = passive_record(run, _provider(run.integration_type, provider))
    if record is None:
        return
    stored = (await health.org_health_for(conn, run.org_id, [run.integration_type])).get(
        run.integration_type
    )
    if (
        stored is not None
        and stored.checked_at is not None
        and stored.checked_at >= record.checked_at
    ):
        return  # this report (or a newer result) is already recorded
    rows = await health.record_results(conn, [record])
    await engine.process_status_rows(conn, rows, now, batch)


def _provider(integration_type: str, display_name: str) -> Provider:
    adapter = ADAPTERS.get(integration_type)
    return adapter.provider if adapter else Provider(display_name, "none")


def passive_record(run: ExportRun, provider: Provider) -> CheckRecord | None:
    """The check result an export's outcome stands for; None when it says nothing
    about the connection (a failure of the export's own data, say)."""
    if run.status == "SUCCEEDED":
        return _record(run, "healthy")
    if run.status != "FAILED" or run.error_category not in PASSIVE_FAILURE_CATEGORIES:
        return None
    if run.error_category == "AUTH":
        error = guidance.auth_rejected(provider)
        message, advice, action = error.message, error.guidance, error.recovery_action
    else:
        message = f"The last export to {provider.display_name} failed because of a network timeout."
        advice = (
            "Usually temporary: the next export tells whether it is over. If it lasts, "
            f"look at {provider.display_name}'s status page."
        )
        action = RecoveryAction.WAIT_AND_RETRY
    return _record(
        run,
        "unreachable",
        error_category=run.error_category,
        error_message=message,
        error_guidance=advice,
        recovery_action=action.value,
        docs_url=provider.docs_url,
    )


def _record(
    run: ExportRun,
    status: str,
    *,
    error_category: str | None = None,
    error_message: str | None = None,
    error_guidance: str | None = None,
    recovery_action: str | None = None,
    docs_url: str | None = None,
) -> CheckRecord:
    return CheckRecord(
        org_id=run.org_id,
        integration_type=run.integration_type,
        status=status,
        latency_ms=None,
        checked_at=run.finished_at or run.updated_at,
        trigger="passive",
        error_category=error_category,
        error_message=error_message,
        error_guidance=error_guidance,
        recovery_action=recovery_action,
        docs_url=docs_url,
        idempotency_key=f"export-run:{run.id}:{run.status}",
    )

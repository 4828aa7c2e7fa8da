"""What the worker wires in: the runner's hook, arq functions and cron jobs.

    Runner(..., on_recorded=jobs.on_recorded)
    functions=[..., *jobs.FUNCTIONS], cron_jobs=[..., *jobs.CRON_JOBS]

Each job works in one service-role transaction and publishes the alerts it
changed on `ihm:alerts:org:{org}` after commit (a lost event is a late
dashboard, never a lost alert: the rows and the outbox are committed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from arq import cron, func

from db.alerts import Alert
from db.scope import as_service
from workers import events
from workers.alerting import engine, expiry, exports

log = structlog.get_logger(__name__)

# The runner's hook: `Runner(on_recorded=on_recorded)`.
on_recorded = engine.on_recorded


def export_run_job_id(run_id: UUID | str, updated_at: datetime) -> str:
    """The `_job_id` the API should enqueue `export_run_reported` with: one job per report."""
    return f"export-run:{run_id}:{updated_at.timestamp():.6f}"


async def export_run_reported(ctx: dict[str, Any], org_id: str, run_id: str) -> dict[str, Any]:
    """After `reportExportRun`: EXPORT_FAILED alert and notification, or its resolution,
    and the health of a PASSIVE integration."""
    now = _clock(ctx)()
    async with as_service(ctx["pool"]) as conn:
        changed = await exports.handle_export_run(conn, UUID(org_id), UUID(run_id), now)
    await _publish(ctx, changed)
    return {"alerts": [str(a.id) for a in changed]}


async def scan_credential_expiry(ctx: dict[str, Any]) -> int:
    """Hourly: warn about credentials expiring within two weeks; resolve renewed ones."""
    now = _clock(ctx)()
    async with as_service(ctx["pool"]) as conn:
        changed = await expiry.scan_credential_expiry(conn, now)
    await _publish(ctx, changed)
    return len(changed)


async def evaluate_provider_incidents(ctx: dict[str, Any]) -> dict[str, list[str]]:
    """Every minute: open and resolve provider-wide incidents across all orgs. Runs
    also evaluate their own providers; this catches what concurrent runs could not
    see of each other, and closes incidents of providers nobody checks any more."""
    now = _clock(ctx)()
    async with as_service(ctx["pool"]) as conn:
        opened, resolved = await engine.evaluate_all_incidents(conn, now)
    for incident in opened:
        log.warning("provider_incident_opened", integration_type=incident.integration_type)
    for incident in resolved:
        log.info("provider_incident_resolved", integration_type=incident.integration_type)
    return {
        "opened": [i.integration_type for i in opened],
        "resolved": [i.integration_type for i in resolved],
    }


def _clock(ctx: dict[str, Any]) -> Callable[[], datetime]:
    clock: Callable[[], datetime] | None = ctx.get("clock")
    return clock or (lambda: datetime.now(UTC))


async def _publish(ctx: dict[str, Any], changed: Sequence[Alert]) -> None:
    redis = ctx.get("redis")
    if redis is None or not changed:
        return
    try:
        await events.publish_alert_events(redis, changed)
    except Exception as exc:
        log.warning("alert_events_not_published", error=type(exc).__name__)


FUNCTIONS = [func(export_run_reported, name="export_run_reported")]

CRON_JOBS = [
    cron(scan_credential_expiry, name="scan_credential_expiry", minute={41}, unique=True),
    # Every minute (second 0 by default).
    cron(evaluate_provider_incidents, name="evaluate_provider_incidents", unique=True),
]

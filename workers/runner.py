"""Run an org's checks concurrently, write the run at once, publish what happened.

One failing, hanging or crashing check never affects the others (the seeds'
`Promise.allSettled`); each is cancelled at the check timeout, so an org
finishes within the timeout plus the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from redis.asyncio import Redis

from db import health, integration_types, integrations, schedule
from db.health import CheckRecord, StatusRow
from db.scope import as_service
from workers import events
from workers.checks import ADAPTERS, guidance
from workers.checks.config import InvalidConfig, parse_config
from workers.checks.context import CheckContext
from workers.checks.guidance import Provider
from workers.checks.result import HealthError, HealthResult, Status
from workers.credential_source import VaultCredentialSource, for_org
from workers.scheduling import slot_key

log = structlog.get_logger(__name__)

QUICK_RETRY_DELAY_SECONDS = 0.25

OnRecorded = Callable[[asyncpg.Connection, Sequence[StatusRow], datetime], Awaitable[list[Any]]]


@dataclass(frozen=True)
class Runner:
    """What a run needs; built once per worker."""

    pool: asyncpg.Pool
    checks: CheckContext
    redis: Redis | None
    timeout_seconds: float = 10.0
    # Called inside the run's transaction with the status rows it wrote; returns the
    # alerts it opened, repeated or resolved (published after commit).
    on_recorded: OnRecorded = field(default=lambda conn, rows, now: _no_alerting(conn, rows, now))
    # integration type -> display name, read once per worker.
    display_names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    integration_type: str
    result: HealthResult
    # None when a newer result was already stored (this one was only logged).
    status: StatusRow | None
    event: dict[str, Any] | None


def _provider(integration_type: str, display_name: str) -> Provider:
    adapter = ADAPTERS.get(integration_type)
    return adapter.provider if adapter else Provider(display_name, "none")


async def _run_one(
    runner: Runner,
    checks: CheckContext,
    org_id: UUID,
    integration: integrations.Integration,
    display_name: str,
) -> HealthResult:
    """Never raises (but for cancellation): every outcome becomes a HealthResult."""
    kind = integration.integration_type
    provider = _provider(kind, display_name)
    adapter_class = ADAPTERS.get(kind)
    now = checks.clock()
    if adapter_class is None:
        error = guidance.invalid_configuration(provider, f"no checker for type {kind!r}")
        return HealthResult(Status.UNREACHABLE, 0, now, error)
    try:
        config = parse_config(kind, integration.config)
    except InvalidConfig as exc:
        return HealthResult(
            Status.UNREACHABLE, 0, now, guidance.invalid_configuration(provider, str(exc))
        )
    adapter = adapter_class(checks)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(runner.timeout_seconds):
            result = await adapter.check(org_id, config)
            if _worth_retrying(result.error, result.status):
                await asyncio.sleep(QUICK_RETRY_DELAY_SECONDS)
                result = await adapter.check(org_id, config)
    except TimeoutError:
        latency = round((loop.time() - started) * 1000)
        error = guidance.timed_out(provider, runner.timeout_seconds)
        return HealthResult(Status.UNREACHABLE, latency, now, error)
    except Exception as exc:
        # The exception's text may hold a URL or a body: log its type and where, not its text.
        log.error(
            "check_crashed",
            org_id=str(org_id),
            integration_type=kind,
            exception=type(exc).__name__,
            at=_where(exc),
        )
        error = guidance.unexpected(provider, type(exc).__name__)
        latency = round((loop.time() - started) * 1000)
        return HealthResult(Status.UNREACHABLE, latency, now, error)
    return result


def _worth_retrying(error: HealthError | None, status: Status) -> bool:
    return status is Status.UNREACHABLE and error is not None and error.transient


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"


def _record(
    org_id: UUID,
    kind: str,
    result: HealthResult,
    trigger: str,
    scheduled_for: datetime | None,
    started_at: datetime,
    idempotency_key: str | None,
) -> CheckRecord:
    error = result.error
    return CheckRecord(
        org_id=org_id,
        integration_type=kind,
        status=result.status.value,
        latency_ms=result.latency_ms,
        checked_at=result.checked_at,
        trigger=trigger,
        error_category=error.category.value if error else None,
        error_message=error.message if error else None,
        error_guidance=error.guidance if error else None,
        recovery_action=error.recovery_action.value if error else None,
        docs_url=error.docs_url if error else None,
        scheduled_for=scheduled_for,
        started_at=started_at,
        idempotency_key=idempotency_key,
    )


async def run_health_checks(
    runner: Runner,
    org_id: UUID,
    *,
    integration_types_filter: Collection[str] | None = None,
    trigger: str = "scheduled",
    scheduled_for: datetime | None = None,
    idempotency_key: str | None = None,
    slots: dict[str, datetime] | None = None,
) -> list[Outcome]:
    """Check the org's enabled integrations (or the named ones); store and publish.

    `slots` (scheduled runs): the integration types to check and each one's scheduled
    slot. A slot's result is written once, however often its job runs.
    """
    if slots is not None:
        integration_types_filter = set(slots)
    started_at = runner.checks.clock()
    checks = runner.checks
    async with runner.pool.acquire() as conn:
        configured = await integrations.list_for_org(conn, org_id)
        if not runner.display_names:  # the catalogue changes only with a migration
            types = await integration_types.list_all(conn)
            runner.display_names.update({t.key: t.display_name for t in types})
        if isinstance(checks.credentials, VaultCredentialSource):
            # The org's credentials in one query instead of one per adapter.
            checks = replace(checks, credentials=await for_org(checks.credentials, conn, org_id))
    names = runner.display_names
    chosen = [
        i
        for i in configured
        if i.enabled
        and (integration_types_filter is None or i.integration_type in integration_types_filter)
        and (trigger != "scheduled" or i.monitoring_mode == "ACTIVE")
    ]
    if not chosen:
        return []

    results = await asyncio.gather(
        *(_run_one(runner, checks, org_id, i, names[i.integration_type]) for i in chosen)
    )
    records = [
        _record(
            org_id,
            i.integration_type,
            r,
            trigger,
            slots[i.integration_type] if slots else scheduled_for,
            started_at,
            slot_key(i.id, slots[i.integration_type]) if slots else idempotency_key,
        )
        for i, r in zip(chosen, results, strict=True)
    ]
    async with as_service(runner.pool) as conn:
        if slots:
            fresh = await schedule.claim_slots(
                conn, [(i.id, slots[i.integration_type], org_id) for i in chosen]
            )
            written = {i.integration_type for i in chosen if i.id in fresh}
            records = [r for r in records if r.integration_type in written]
        rows = await health.record_results(conn, records)
        # Alerts and their notifications are written in this same transaction (an
        # outbox): a crash after commit loses none, a crash before commit loses both.
        changed_alerts = await runner.on_recorded(conn, rows, runner.checks.clock())

    by_type = {row.integration_type: row for row in rows}
    outcomes: list[Outcome] = []
    for integration, result in zip(chosen, results, strict=True):
        row = by_type.get(integration.integration_type)
        event = (
            events.status_event(row, integration, names[integration.integration_type])
            if row
            else None
        )
        outcomes.append(Outcome(integration.integration_type, result, row, event))
    await _publish([o.event for o in outcomes if o.event], org_id, runner.redis)
    await _publish_alerts(changed_alerts, org_id, runner.redis)
    return outcomes


async def _publish_alerts(alerts: Sequence[Any], org_id: UUID, redis: Redis | None) -> None:
    if redis is None or not alerts:
        return
    try:
        await events.publish_alert_events(redis, alerts)
    except Exception as exc:
        log.warning("alert_events_not_published", org_id=str(org_id), error=type(exc).__name__)


async def _no_alerting(
    conn: asyncpg.Connection, rows: Sequence[StatusRow], now: datetime
) -> list[Any]:
    return []


async def _publish(status_events: list[dict[str, Any]], org_id: UUID, redis: Redis | None) -> None:
    """After commit. A lost event is a late dashboard, never a lost result: log, go on."""
    if redis is None:
        return
    try:
        await events.publish_status_events(redis, status_events)
    except Exception as exc:
        log.warning("status_events_not_published", org_id=str(org_id), error=type(exc).__name__)

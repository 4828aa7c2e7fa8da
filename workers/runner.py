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
from workers.credential_source import OrgCredentials, VaultCredentialSource, for_integrations
from workers.scheduling import slot_key

log = structlog.get_logger(__name__)

QUICK_RETRY_DELAY_SECONDS = 0.25

# Runs in a run's write transaction with the orgs of the run.
Also = Callable[[asyncpg.Connection, list[UUID]], Awaitable[None]]
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


@dataclass(frozen=True)
class OrgRun:
    """One org's part of a batched run.

    `slots` (scheduled runs): the integration types to check and each one's scheduled
    slot; a slot's result is written once, however often its job runs. Otherwise
    `types` names the integrations to check (None: every enabled one).
    """

    org_id: UUID
    types: Collection[str] | None = None
    slots: dict[str, datetime] | None = None


@dataclass(frozen=True)
class _Planned:
    run: OrgRun
    integration: integrations.Integration
    checks: CheckContext

    @property
    def slot(self) -> datetime | None:
        """The scheduled slot this check is for (scheduled runs only)."""
        return self.run.slots[self.integration.integration_type] if self.run.slots else None


async def run_health_checks(
    runner: Runner,
    org_id: UUID,
    *,
    integration_types_filter: Collection[str] | None = None,
    trigger: str = "scheduled",
    scheduled_for: datetime | None = None,
    idempotency_key: str | None = None,
    slots: dict[str, datetime] | None = None,
    also: Also | None = None,
) -> list[Outcome]:
    """Check one org's enabled integrations (or the named ones); store and publish."""
    outcomes = await run_checks(
        runner,
        [OrgRun(org_id, integration_types_filter, slots)],
        trigger=trigger,
        scheduled_for=scheduled_for,
        idempotency_key=idempotency_key,
        also=also,
    )
    return outcomes[org_id]


async def run_checks(
    runner: Runner,
    runs: Sequence[OrgRun],
    *,
    trigger: str = "scheduled",
    scheduled_for: datetime | None = None,
    idempotency_key: str | None = None,
    also: Also | None = None,
) -> dict[UUID, list[Outcome]]:
    """Check several orgs' integrations at once; store and publish; outcomes by org.

    One read of the orgs' integrations and credentials, every check concurrently, one
    write transaction (results, alerts, notifications and `also`), one publish. A
    write that fails is retried org by org, so one org's failure cannot hold back the
    others' results.
    """
    started_at = runner.checks.clock()
    planned = await _plan(runner, runs, trigger)
    if not planned:
        return {run.org_id: [] for run in runs}
    names = runner.display_names
    results = await asyncio.gather(
        *(
            _run_one(
                runner, p.checks, p.run.org_id, p.integration, names[p.integration.integration_type]
            )
            for p in planned
        )
    )
    records = [
        _record(
            p.run.org_id,
            p.integration.integration_type,
            r,
            trigger,
            p.slot or scheduled_for,
            started_at,
            slot_key(p.integration.id, p.slot) if p.slot else idempotency_key,
        )
        for p, r in zip(planned, results, strict=True)
    ]
    try:
        rows, changed_alerts = await _write(runner, planned, records, also)
    except _PartlyWritten as partly:
        # What was written is published before the failure goes up.
        await _publish_written(runner, planned, results, partly.rows, partly.changed)
        raise partly.failure from None
    outcomes = await _publish_written(runner, planned, results, rows, changed_alerts)
    return {run.org_id: outcomes.get(run.org_id, []) for run in runs}


async def _publish_written(
    runner: Runner,
    planned: Sequence[_Planned],
    results: Sequence[HealthResult],
    rows: Sequence[StatusRow],
    changed_alerts: Sequence[Any],
) -> dict[UUID, list[Outcome]]:
    """Each planned check's outcome, by org; the events of what was written, published."""
    names = runner.display_names
    outcomes: dict[UUID, list[Outcome]] = {}
    by_key = {(row.org_id, row.integration_type): row for row in rows}
    for p, result in zip(planned, results, strict=True):
        kind = p.integration.integration_type
        row = by_key.get((p.run.org_id, kind))
        event = events.status_event(row, p.integration, names[kind]) if row else None
        outcomes.setdefault(p.run.org_id, []).append(Outcome(kind, result, row, event))
    await _publish([o.event for found in outcomes.values() for o in found if o.event], runner.redis)
    await _publish_alerts(changed_alerts, runner.redis)
    return outcomes


async def _plan(runner: Runner, runs: Sequence[OrgRun], trigger: str) -> list[_Planned]:
    """The integrations to check, each with its org's credentials (read once)."""
    org_ids = [run.org_id for run in runs]
    async with runner.pool.acquire() as conn:
        configured = await integrations.list_for_orgs(conn, org_ids)
        if not runner.display_names:  # the catalogue changes only with a migration
            types = await integration_types.list_all(conn)
            runner.display_names.update({t.key: t.display_name for t in types})
        chosen = [(run, i) for run in runs for i in _chosen(run, configured[run.org_id], trigger)]
        source = runner.checks.credentials
        credentials: dict[UUID, OrgCredentials] = {}
        if chosen and isinstance(source, VaultCredentialSource):
            # The run's credentials in one query instead of one per adapter.
            credentials = await for_integrations(source, conn, org_ids, [i.id for _, i in chosen])
    return [
        _Planned(
            run,
            i,
            replace(runner.checks, credentials=credentials[run.org_id])
            if run.org_id in credentials
            else runner.checks,
        )
        for run, i in chosen
    ]


def _chosen(
    run: OrgRun, configured: Sequence[integrations.Integration], trigger: str
) -> list[integrations.Integration]:
    wanted = set(run.slots) if run.slots is not None else run.types
    return [
        i
        for i in configured
        if i.enabled
        and (wanted is None or i.integration_type in wanted)
        and (trigger != "scheduled" or i.monitoring_mode == "ACTIVE")
    ]


async def _write(
    runner: Runner, planned: Sequence[_Planned], records: Sequence[CheckRecord], also: Also | None
) -> tuple[list[StatusRow], list[Any]]:
    try:
        return await _write_once(runner, planned, records, also)
    except Exception as exc:
        orgs = len({p.run.org_id for p in planned})
        if orgs < 2:
            raise
        log.error("batched_write_failed", orgs=orgs, error=type(exc).__name__, at=_where(exc))
    rows: list[StatusRow] = []
    changed: list[Any] = []
    failure: Exception | None = None
    for org_id in dict.fromkeys(p.run.org_id for p in planned):
        mine = [i for i, p in enumerate(planned) if p.run.org_id == org_id]
        try:
            org_rows, org_changed = await _write_once(
                runner, [planned[i] for i in mine], [records[i] for i in mine], also
            )
        except Exception as exc:
            log.error("org_write_failed", org_id=str(org_id), error=type(exc).__name__)
            failure = failure or exc
            continue
        rows.extend(org_rows)
        changed.extend(org_changed)
    if failure is not None:
        raise _PartlyWritten(failure, rows, changed)
    return rows, changed


class _PartlyWritten(Exception):
    """The org-by-org retry wrote some orgs and failed for others."""

    def __init__(self, failure: Exception, rows: list[StatusRow], changed: list[Any]) -> None:
        super().__init__(type(failure).__name__)
        self.failure, self.rows, self.changed = failure, rows, changed


async def _write_once(
    runner: Runner, planned: Sequence[_Planned], records: Sequence[CheckRecord], also: Also | None
) -> tuple[list[StatusRow], list[Any]]:
    """One transaction: slots claimed, results, alerts and notifications (an outbox: a
    crash after commit loses none, a crash before commit loses all), then `also`."""
    async with as_service(runner.pool) as conn:
        scheduled = [(p.integration.id, p.slot, p.run.org_id) for p in planned if p.slot]
        if scheduled:
            fresh = await schedule.claim_slots(conn, scheduled)
            records = [
                r
                for p, r in zip(planned, records, strict=True)
                if not p.slot or p.integration.id in fresh
            ]
        rows = await health.record_results(conn, records)
        changed_alerts = await runner.on_recorded(conn, rows, runner.checks.clock())
        if also is not None:
            await also(conn, sorted({p.run.org_id for p in planned}))
    return rows, changed_alerts


async def _publish_alerts(alerts: Sequence[Any], redis: Redis | None) -> None:
    if redis is None or not alerts:
        return
    try:
        await events.publish_alert_events(redis, alerts)
    except Exception as exc:
        log.warning("alert_events_not_published", count=len(alerts), error=type(exc).__name__)


async def _no_alerting(
    conn: asyncpg.Connection, rows: Sequence[StatusRow], now: datetime
) -> list[Any]:
    return []


async def _publish(status_events: list[dict[str, Any]], redis: Redis | None) -> None:
    """After commit. A lost event is a late dashboard, never a lost result: log, go on."""
    if redis is None:
        return
    try:
        await events.publish_status_events(redis, status_events)
    except Exception as exc:
        log.warning(
            "status_events_not_published", count=len(status_events), error=type(exc).__name__
        )

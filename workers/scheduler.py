"""The scheduler: claim due integrations, enqueue their checks per org, exactly once.

A tick (an arq cron job, unique across workers) claims due integrations with
FOR UPDATE SKIP LOCKED, decides each one's next slot (backoff, floors, jitter
by phase) or a switch to passive monitoring, enqueues one job per org whose
arq job id is derived from the (integration, slot) keys, and only then commits
the new slots. A crash before the commit re-claims the same slots on the next
tick and arq refuses the duplicate job id; a job that runs twice writes once
(the check_slots ledger). Drift between slot and start raises SCHEDULER_DRIFT.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from arq import Retry, cron
from arq.connections import ArqRedis
from arq.cron import CronJob

from db import alerts, schedule
from db.scope import as_service
from workers.runner import OrgRun, Runner, run_checks
from workers.scheduling import Due, decide, drifted, slot_key

log = structlog.get_logger(__name__)

BATCH = 500

_FIRING_DRIFT = """
SELECT org_id, integration_type FROM health_check_alerts
 WHERE org_id = ANY($1::uuid[]) AND kind = 'SCHEDULER_DRIFT' AND state = 'FIRING'
"""
TICK_BUDGET_SECONDS = 10.0
RETRY_SECONDS = 5


# Checks per job: several orgs share a job (an org is never split), since the queue's
# fixed cost per job is several times a check's own. Jobs run their checks concurrently.
CHECKS_PER_JOB = 24

Slots = dict[UUID, dict[str, datetime]]


def pack(per_org: Slots, size: int) -> list[Slots]:
    """Orgs' due slots in groups of about `size` checks (an org stays whole), in order."""
    groups: list[Slots] = []
    current: Slots = {}
    count = 0
    for org_id, slots in per_org.items():
        if current and count + len(slots) > size:
            groups.append(current)
            current, count = {}, 0
        current[org_id] = slots
        count += len(slots)
    if current:
        groups.append(current)
    return groups


def scheduled_job_id(group: Slots, ids: dict[UUID, dict[str, UUID]]) -> str:
    """Derived from the (integration, slot) keys: the same slots always make the same id."""
    keys = sorted(
        slot_key(ids[org_id][kind], slot)
        for org_id, slots in group.items()
        for kind, slot in slots.items()
    )
    return f"sched:{hashlib.sha256('|'.join(keys).encode()).hexdigest()[:40]}"


async def schedule_due(ctx: dict[str, Any], *, now: datetime | None = None) -> dict[str, int]:
    """One tick: every due integration gets exactly one job for its slot."""
    pool = ctx["pool"]
    queue: ArqRedis = ctx["redis"]
    started = time.monotonic()
    totals = {"enqueued_checks": 0, "jobs": 0, "passive": 0, "reactivated": 0}
    async with as_service(pool) as conn:
        totals["reactivated"] = await schedule.reactivate_passive(conn, now or datetime.now(UTC))
    while time.monotonic() - started < TICK_BUDGET_SECONDS:
        moment = now or datetime.now(UTC)
        async with as_service(pool) as conn:
            due = await schedule.claim_due(conn, moment, BATCH)
            if not due:
                break
            per_org: dict[UUID, dict[str, datetime]] = defaultdict(dict)
            ids: dict[UUID, dict[str, UUID]] = defaultdict(dict)
            next_ids, next_times, passive_ids, passive_until = [], [], [], []
            for row in due:
                decision = decide(
                    Due(
                        row.integration_id,
                        row.check_interval_seconds,
                        row.min_interval_seconds,
                        row.consecutive_failures,
                        row.rate_limited_streak,
                    ),
                    moment,
                )
                if decision.go_passive_until is not None:
                    passive_ids.append(row.integration_id)
                    passive_until.append(decision.go_passive_until)
                    continue
                per_org[row.org_id][row.integration_type] = row.slot
                ids[row.org_id][row.integration_type] = row.integration_id
                next_ids.append(row.integration_id)
                next_times.append(decision.next_check_at)
            # Enqueue before committing the new slots: see the module docstring. The
            # batch's jobs at once: their round trips overlap in a busy worker's loop.
            # In org order: a re-claim of the same slots (after a tick that failed before
            # its commit) packs them the same way, so arq refuses the repeated job ids.
            groups = pack(dict(sorted(per_org.items())), CHECKS_PER_JOB)
            await asyncio.gather(
                *(
                    queue.enqueue_job(
                        "check_scheduled_orgs",
                        {
                            str(org_id): {kind: slot.isoformat() for kind, slot in slots.items()}
                            for org_id, slots in group.items()
                        },
                        _job_id=scheduled_job_id(group, ids),
                    )
                    for group in groups
                )
            )
            totals["jobs"] += len(groups)
            totals["enqueued_checks"] += sum(len(slots) for slots in per_org.values())
            await schedule.reschedule(conn, next_ids, next_times)
            await schedule.go_passive(conn, passive_ids, passive_until)
            totals["passive"] += len(passive_ids)
            if passive_ids:
                log.info("integrations_switched_to_passive", count=len(passive_ids))
        if len(due) < BATCH:
            break
    return totals


async def check_scheduled_orgs(
    ctx: dict[str, Any], groups: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """The due checks of several orgs, each for its scheduled slot, in one run."""
    runner: Runner = ctx["runner"]
    slots = {
        UUID(org_id): {kind: datetime.fromisoformat(at) for kind, at in org_slots.items()}
        for org_id, org_slots in groups.items()
    }
    started_at = runner.checks.clock()

    async def record_drift(conn: asyncpg.Connection, orgs: list[UUID]) -> None:
        # The orgs this transaction writes (all of them, or one in the org-by-org retry).
        await _record_drift(conn, {org: slots[org] for org in orgs}, started_at)

    try:
        outcomes = await run_checks(
            runner,
            [OrgRun(org_id, slots=org_slots) for org_id, org_slots in slots.items()],
            trigger="scheduled",
            also=record_drift,
        )
    except Exception as exc:
        # arq retries only on Retry: run again (what was written is not written again).
        log.warning("scheduled_run_failed", orgs=len(slots), error=type(exc).__name__)
        raise Retry(defer=RETRY_SECONDS) from exc
    return [
        {
            "orgId": str(org_id),
            "integrationType": o.integration_type,
            "status": o.result.status.value,
            "stored": o.status is not None,
        }
        for org_id, found in outcomes.items()
        for o in found
    ]


async def check_scheduled(
    ctx: dict[str, Any], org_id: str, slots: dict[str, str]
) -> list[dict[str, Any]]:
    """One org's due checks (the job of earlier versions, still queued after an upgrade)."""
    return await check_scheduled_orgs(ctx, {org_id: slots})


async def _record_drift(conn: asyncpg.Connection, slots: Slots, started_at: datetime) -> None:
    """SCHEDULER_DRIFT (for global admins) while checks start more than 5 minutes late;
    resolved by the first check on time."""
    late = {
        (org_id, kind)
        for org_id, org_slots in slots.items()
        for kind, slot in org_slots.items()
        if drifted(slot, started_at)
    }
    for org_id, kind in sorted(late):
        minutes = (started_at - slots[org_id][kind]).total_seconds() / 60
        await alerts.open_or_repeat(
            conn,
            org_id=org_id,
            integration_type=kind,
            kind="SCHEDULER_DRIFT",
            severity="WARNING",
            category=None,
            title="Health checks are running late",
            message=f"The scheduled check started {minutes:.0f} minutes after its slot.",
            guidance="The monitor's workers are behind: add workers or check their health "
            "(queue length, Redis, Postgres).",
            fingerprint="drift",
            now=started_at,
        )
    firing = {
        (r["org_id"], r["integration_type"]) for r in await conn.fetch(_FIRING_DRIFT, list(slots))
    }
    on_time = {(org_id, kind) for org_id, org_slots in slots.items() for kind in org_slots} - late
    for org_id, kind in sorted(firing & on_time):
        await alerts.resolve(
            conn, org_id=org_id, integration_type=kind, kinds=["SCHEDULER_DRIFT"], now=started_at
        )
    if late:
        log.warning("scheduler_drift", late=len(late), orgs=len({org for org, _ in late}))


def tick_cron(tick_seconds: float) -> CronJob:
    """The scheduling tick as an arq cron job (unique: one worker runs each tick)."""
    step = max(1, int(tick_seconds))
    seconds = set(range(0, 60, step)) if step < 60 and 60 % step == 0 else {0}
    # arq waits for the longest job timeout (plus 10 s) before another worker may take
    # over the jobs of one that died: keep the tick's timeout short.
    return cron(
        schedule_due,
        second=seconds,
        unique=True,
        run_at_startup=True,
        timeout=TICK_BUDGET_SECONDS + 5,
    )

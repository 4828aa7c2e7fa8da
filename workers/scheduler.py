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

import hashlib
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from arq import cron
from arq.connections import ArqRedis
from arq.cron import CronJob

from db import alerts, schedule
from db.scope import as_service
from workers.runner import Runner, run_health_checks
from workers.scheduling import Due, decide, drifted, slot_key

log = structlog.get_logger(__name__)

BATCH = 500

_FIRING_DRIFT = """
SELECT integration_type FROM health_check_alerts
 WHERE org_id = $1 AND kind = 'SCHEDULER_DRIFT' AND state = 'FIRING'
"""
TICK_BUDGET_SECONDS = 10.0


def scheduled_job_id(org_id: UUID, slots: dict[str, datetime], ids: dict[str, UUID]) -> str:
    keys = sorted(slot_key(ids[kind], slot) for kind, slot in slots.items())
    return f"sched:{org_id}:{hashlib.sha256('|'.join(keys).encode()).hexdigest()[:32]}"


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
            # Enqueue before committing the new slots: see the module docstring.
            for org_id, slots in per_org.items():
                await queue.enqueue_job(
                    "check_scheduled",
                    str(org_id),
                    {kind: slot.isoformat() for kind, slot in slots.items()},
                    _job_id=scheduled_job_id(org_id, slots, ids[org_id]),
                )
                totals["jobs"] += 1
                totals["enqueued_checks"] += len(slots)
            await schedule.reschedule(conn, next_ids, next_times)
            await schedule.go_passive(conn, passive_ids, passive_until)
            totals["passive"] += len(passive_ids)
            if passive_ids:
                log.info("integrations_switched_to_passive", count=len(passive_ids))
        if len(due) < BATCH:
            break
    return totals


async def check_scheduled(
    ctx: dict[str, Any], org_id: str, slots: dict[str, str]
) -> list[dict[str, Any]]:
    """The checks of one org's due integrations, each for its scheduled slot."""
    runner: Runner = ctx["runner"]
    org = UUID(org_id)
    parsed = {kind: datetime.fromisoformat(at) for kind, at in slots.items()}
    started_at = runner.checks.clock()
    outcomes = await run_health_checks(runner, org, slots=parsed, trigger="scheduled")
    await _record_drift(runner, org, parsed, started_at)
    return [
        {
            "integrationType": o.integration_type,
            "status": o.result.status.value,
            "stored": o.status is not None,
        }
        for o in outcomes
    ]


async def _record_drift(
    runner: Runner, org: UUID, slots: dict[str, datetime], started_at: datetime
) -> None:
    """SCHEDULER_DRIFT (for global admins) while checks start more than 5 minutes late."""
    late = {k for k, slot in slots.items() if drifted(slot, started_at)}
    async with as_service(runner.pool) as conn:
        for kind in sorted(late):
            minutes = (started_at - slots[kind]).total_seconds() / 60
            await alerts.open_or_repeat(
                conn,
                org_id=org,
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
        firing = {r["integration_type"] for r in await conn.fetch(_FIRING_DRIFT, org)}
        for kind in sorted(firing & (set(slots) - late)):
            await alerts.resolve(
                conn, org_id=org, integration_type=kind, kinds=["SCHEDULER_DRIFT"], now=started_at
            )
    if late:
        log.warning("scheduler_drift", org_id=str(org), late=sorted(late))


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

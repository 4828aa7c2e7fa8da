"""Manual checks: `runCheck` / `runOrgChecks`, shared in-flight jobs and rate limits."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import structlog
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import Job
from redis.asyncio import Redis

from db import integrations
from resolvers import audit_trail
from resolvers.access import RUN_CHECKS, require, target_org
from resolvers.errors import BadUserInput, NotFound, RateLimited
from resolvers.session import Caller
from settings import Settings
from workers.jobs import check_job_id, cooldown_key

log = structlog.get_logger(__name__)

WAIT_SECONDS = 12.0
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class CheckTicket:
    job_id: str
    integration_type: str
    enqueued_at: datetime
    # The fresh health snapshot (IntegrationHealth as JSON) when waited for.
    health: dict[str, Any] | None


async def _limit_caller(redis: Redis, subject: str, per_minute: int) -> None:
    """At most `per_minute` new manual checks per caller in any 60 seconds.

    A sliding window (a sorted set of start times): a fixed clock-minute counter let a
    caller start twice the budget around a minute boundary.
    """
    key = f"ihm:ratelimit:manual:{subject}"
    now = time.time()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, 0, now - WINDOW_SECONDS)
        pipe.zadd(key, {(member := f"{now}:{uuid4().hex}"): now})
        pipe.zcard(key)
        pipe.zrange(key, 0, 0, withscores=True)
        pipe.expire(key, WINDOW_SECONDS + 1)
        _, _, count, oldest, _ = await pipe.execute()
    if count > per_minute:
        await redis.zrem(key, member)  # a refused attempt does not use up the budget
        retry_after = oldest[0][1] + WINDOW_SECONDS - now if oldest else WINDOW_SECONDS
        raise RateLimited(
            f"At most {per_minute} manual checks per minute; try again shortly.",
            retry_after_seconds=math.ceil(retry_after),
        )


async def _cooldown(redis: Redis, org: UUID, integration_type: str) -> None:
    remaining_ms = await redis.pttl(cooldown_key(org, integration_type))
    if remaining_ms > 0:
        raise RateLimited(
            f"{integration_type} was just checked; the next manual check is possible shortly.",
            retry_after_seconds=-(-remaining_ms // 1000),
        )


async def run_check(
    caller: Caller,
    *,
    queue: ArqRedis,
    settings: Settings,
    integration_type: str,
    org_id: UUID | None,
    wait: bool,
) -> CheckTicket:
    principal = caller.principal
    require(principal, RUN_CHECKS, "run checks")
    org = target_org(principal, org_id)
    found = await caller.as_caller(org, lambda c: integrations.get(c, org, integration_type))
    if found is None:
        raise NotFound(f"No {integration_type!r} integration is configured for this organization.")
    if not found.enabled:
        raise BadUserInput(
            f"The {integration_type} integration is disabled; enable it first.",
            field="integrationType",
        )

    job_id = check_job_id(org, integration_type)
    job: Job | None = None
    if not await queue.exists(job_key_prefix + job_id):
        # A new check: the integration's cooldown and the caller's budget apply.
        await _cooldown(queue, org, integration_type)
        await _limit_caller(queue, principal.sub, settings.manual_checks_per_minute)
        job = await queue.enqueue_job(
            "check_integration", str(org), integration_type, trigger="manual", _job_id=job_id
        )
    # None: one was already in flight; join it.
    if job is not None:
        await audit_trail.record_alone(
            caller, org, "runCheck", {"integrationType": integration_type, "jobId": job_id}
        )
    job = job or Job(job_id, redis=queue)
    info = await job.info()
    enqueued_at = info.enqueue_time if info else datetime.now(UTC)
    health = await _wait(job) if wait else None
    return CheckTicket(job_id, integration_type, enqueued_at, health)


async def _wait(job: Job) -> dict[str, Any] | None:
    try:
        summary = await job.result(timeout=WAIT_SECONDS, poll_delay=0.05)
    except TimeoutError:
        return None
    except Exception as exc:  # the check job itself failed: no fresh result to give
        log.warning("manual_check_failed", job_id=job.job_id, error=type(exc).__name__)
        return None
    return summary.get("health") if isinstance(summary, dict) else None


async def run_org_checks(
    caller: Caller, *, queue: ArqRedis, settings: Settings, org_id: UUID | None, wait: bool
) -> list[CheckTicket]:
    require(caller.principal, RUN_CHECKS, "run checks")
    org = target_org(caller.principal, org_id)
    configured = await caller.as_caller(org, lambda c: integrations.list_for_org(c, org))
    return list(
        await asyncio.gather(
            *(
                run_check(
                    caller,
                    queue=queue,
                    settings=settings,
                    integration_type=i.integration_type,
                    org_id=org,
                    wait=wait,
                )
                for i in configured
                if i.enabled
            )
        )
    )

"""The arq worker: its settings, shared clients and jobs."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import httpx
import uvloop
from arq import cron, func
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from db.pool import create_pool
from db.vault import Vault
from settings import Settings
from workers import jobs, maintenance, scheduler
from workers.alerting import jobs as alerting
from workers.checks.context import CheckContext, TokenCache
from workers.credential_source import VaultCredentialSource
from workers.delivery import jobs as delivery
from workers.http_transport import AiohttpTransport, no_cookies
from workers.runner import Runner

# Scheduled jobs carry about 24 checks each: up to some 770 checks in flight.
MAX_JOBS = 32
USER_AGENT = "integration-health-monitor/0.1 (+health check)"


def redis_settings(url: str) -> RedisSettings:
    """arq's settings for REDIS_URL. Every command retries with backoff for about a
    minute, so a Redis restart pauses the worker instead of ending it (arq's default)."""
    base = RedisSettings.from_dsn(url)
    base.conn_retries = 30
    base.conn_retry_delay = 1
    base.retry_on_timeout = True
    base.retry_on_error = [RedisConnectionError, RedisTimeoutError, ConnectionError, OSError]
    base.retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=40)
    return base


def queue_client(url: str) -> ArqRedis:
    """A client that enqueues jobs (the API's): connects lazily and retries briefly, so a
    request fails within a couple of seconds instead of hanging while Redis is away."""
    conf = redis_settings(url)
    client: ArqRedis = ArqRedis.from_url(
        url,
        retry_on_timeout=True,
        retry_on_error=conf.retry_on_error,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=5),
        socket_connect_timeout=conf.conn_timeout,
    )
    return client


def http_client(settings: Settings) -> httpx.AsyncClient:
    """One client per worker: keep-alive to providers, bounded connections, no cookies
    (see workers.http_transport)."""
    timeout = settings.check_timeout_seconds
    # Above the checks a worker has in flight (MAX_JOBS jobs of about 24): waiting for a
    # connection would count against a check's latency and timeout.
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits),
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        headers={"User-Agent": USER_AGENT},
        cookies=no_cookies(),
        follow_redirects=False,
    )


def build_worker(settings: Settings, *, scheduler_tick: bool = True, **overrides: Any) -> Worker:
    """The worker; `scheduler_tick=False` leaves out the scheduling cron (tests that
    drive checks by hand)."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        pool = await create_pool(
            settings.require_database(), application_name="ihm-worker", max_size=40
        )
        vault = Vault([(k.key_id, k.key) for k in settings.vault_keys])
        http = http_client(settings)
        ctx.update(settings=settings, pool=pool, http=http)
        delivery.startup(ctx)
        ctx["runner"] = Runner(
            pool=pool,
            checks=CheckContext(
                http=http, credentials=VaultCredentialSource(pool, vault), tokens=TokenCache()
            ),
            redis=ctx["redis"],
            timeout_seconds=settings.check_timeout_seconds,
            on_recorded=alerting.on_recorded,
        )
        await maintenance.ensure_result_partitions(ctx)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "http" in ctx:
            await ctx["http"].aclose()
        if "pool" in ctx:
            await ctx["pool"].close()

    options: dict[str, Any] = {
        "functions": [
            jobs.check_org,
            scheduler.check_scheduled_orgs,
            scheduler.check_scheduled,
            # Waiters poll for the result; keep it only briefly so that a later runCheck
            # (after the cooldown) starts a new check instead of joining this finished one.
            func(jobs.check_integration, keep_result=3),
            *delivery.FUNCTIONS,
            *alerting.FUNCTIONS,
        ],
        "cron_jobs": [
            *([scheduler.tick_cron(settings.scheduler_tick_seconds)] if scheduler_tick else []),
            cron(maintenance.ensure_result_partitions, minute={7}, unique=True),
            cron(maintenance.roll_up, minute={2, 32}, unique=True),
            cron(maintenance.prune_results, hour={3}, minute={17}, unique=True),
            cron(maintenance.prune_old_rows, hour={3}, minute={27}, unique=True),
            *delivery.CRON_JOBS,
            *alerting.CRON_JOBS,
        ],
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "redis_settings": redis_settings(settings.require_redis()),
        "handle_signals": True,
        # A check job ends within the check timeout (its quick retry included) plus the
        # write; a worker that dies mid-job is replaced after this plus arq's 10 s margin.
        "job_timeout": settings.check_timeout_seconds + 5,
        "max_jobs": MAX_JOBS,
        # arq reads this many job ids per poll, starts them as slots free up, then sleeps
        # poll_delay: with only max_jobs read, a worker that finished them idled for the
        # rest of the 0.5 s default (a quarter of its time under load).
        "queue_read_limit": 2 * MAX_JOBS,
        "poll_delay": 0.1,
    }
    options.update(overrides)
    return Worker(**options)


def run(settings: Settings) -> None:
    # uvloop (already installed with uvicorn[standard]) for the worker's event loop too:
    # a worker spends its time in socket I/O to providers, Postgres and Redis.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # httpx logs every provider request at INFO (hundreds of lines a second at full
    # speed); each check's outcome is stored with its error instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # As for the API (schema.app.tune_gc): what is loaded now lives as long as the
    # process; young collections every 50,000 allocations instead of 700.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    build_worker(settings).run()

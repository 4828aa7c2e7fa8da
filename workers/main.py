"""The arq worker: its settings, shared clients and cron jobs."""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker

from db.pool import create_pool
from settings import Settings
from workers import maintenance


def redis_settings(url: str) -> RedisSettings:
    """arq's settings for REDIS_URL, retrying for a while when Redis is away."""
    base = RedisSettings.from_dsn(url)
    base.conn_retries = 30
    base.conn_retry_delay = 1
    base.retry_on_timeout = True
    return base


def build_worker(settings: Settings, **overrides: Any) -> Worker:
    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        ctx["pool"] = await create_pool(
            settings.require_database(), application_name="ihm-worker", max_size=10
        )
        await maintenance.ensure_result_partitions(ctx)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        pool = ctx.get("pool")
        if pool is not None:
            await pool.close()

    options: dict[str, Any] = {
        "functions": [],
        "cron_jobs": [
            cron(maintenance.ensure_result_partitions, minute={7}, unique=True),
            cron(maintenance.prune_results, hour={3}, minute={17}, unique=True),
        ],
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "redis_settings": redis_settings(settings.require_redis()),
        "handle_signals": True,
    }
    options.update(overrides)
    return Worker(**options)


def run(settings: Settings) -> None:
    build_worker(settings).run()

"""The ASGI application: Starlette with its shared clients in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from starlette.applications import Starlette

from db.pool import create_pool
from schema import service_routes
from settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    settings.require_runtime()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.pool = await create_pool(
            settings.require_database(), application_name="ihm-api", max_size=20
        )
        app.state.redis = Redis.from_url(settings.require_redis())
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()

    return Starlette(routes=service_routes.routes, lifespan=lifespan)

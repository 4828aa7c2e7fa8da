"""The ASGI application: Starlette with its shared clients in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from uuid import UUID

import httpx
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from db.pool import create_pool
from db.vault import Vault
from resolvers.auth import TokenVerifier
from schema import oauth, rest, service_routes
from schema.broadcast import StatusBroadcast
from schema.context import Services
from schema.graphql_view import GraphQLView
from schema.limits import BodySizeLimit
from schema.metrics import RequestMetrics
from schema.response_cache import ResponseCache
from schema.root import build_schema
from settings import Settings, load_settings
from workers.events import ALL_ORGS_ALERTS_CHANNEL, ALL_ORGS_CHANNEL
from workers.main import queue_client

MAX_SUBSCRIPTIONS_PER_CONNECTION = 20


async def invalidate_on_events(
    broadcast: StatusBroadcast, cache: ResponseCache, channel: str
) -> None:
    """Every check publishes a status event and every alert change an alert event: the
    org's cached health reads are void."""
    async with aclosing(broadcast.events(channel, counted=False)) as events:
        async for event in events:
            with contextlib.suppress(KeyError, ValueError, TypeError):
                # Status events say orgId, alert events org_id (their own formats).
                cache.org_changed(UUID(event.get("orgId") or event["org_id"]))


def tune_gc() -> None:
    """For the API process, once its app is built (`ihm api`).

    The collector's passes over a process holding a thousand live subscriptions stalled
    every stream by tens to hundreds of milliseconds (bench_api: p99 commit-to-receipt
    262 ms with subscriptions spread over 100 orgs at 2,500 deliveries/s, 31 ms after).
    What exists now (schema, modules, clients) lives as long as the process: it is moved
    out of the collector's sight, and young collections run every 50,000 allocations
    instead of 700. Memory is still freed by reference counting as before; only cycles
    wait longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    settings.require_runtime()
    development = settings.env == "development"
    view = GraphQLView(
        services=None,  # type: ignore[arg-type]  # set in the lifespan
        schema=build_schema(introspection=development),
        graphql_ide="graphiql" if development else None,
        max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
        allowed_origins=settings.allowed_origins,
        keep_alive=True,
        keep_alive_interval=15,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.require_database(), application_name="ihm-api", max_size=20
        )
        redis = Redis.from_url(settings.require_redis())
        # Built without the start-up ping arq's create_pool makes, so the API starts (and
        # /readyz can say what is wrong) while Redis is away; commands retry with backoff.
        queue = queue_client(settings.require_redis())
        broadcast = StatusBroadcast(settings.require_redis())
        await broadcast.start()
        services = Services(
            settings=settings,
            pool=pool,
            redis=redis,
            queue=queue,
            verifier=TokenVerifier(settings),
            vault=Vault([(k.key_id, k.key) for k in settings.vault_keys]),
            broadcast=broadcast,
            http=httpx.AsyncClient(timeout=httpx.Timeout(10, connect=5)),
        )
        view.services = services
        app.state.services = services
        app.state.pool, app.state.redis = pool, redis  # readiness probes
        invalidation = [
            asyncio.create_task(
                invalidate_on_events(broadcast, view.cache, channel),
                name=f"query-cache-invalidation:{channel}",
            )
            for channel in (ALL_ORGS_CHANNEL, ALL_ORGS_ALERTS_CHANNEL)
        ]
        try:
            yield
        finally:
            for task in invalidation:
                task.cancel()
            await asyncio.gather(*invalidation, return_exceptions=True)
            await services.http.aclose()
            await broadcast.stop()
            await queue.aclose()
            await redis.aclose()
            await pool.close()

    return Starlette(
        routes=[
            *service_routes.routes,
            *rest.routes,
            *oauth.routes,
            Route("/graphql", view, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", view),
        ],
        middleware=[Middleware(RequestMetrics), Middleware(BodySizeLimit)],
        lifespan=lifespan,
    )

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from embedded import EmbeddedRedis, free_port
from schema.app import create_app
from settings import Settings


def settings_for(dsn: str, redis_url: str) -> Settings:
    return Settings.model_validate(
        {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "IHM_JWT_SECRET": "x" * 40,
            "IHM_VAULT_KEYS": "k1:" + base64.b64encode(b"k" * 32).decode(),
        }
    )


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, reached in-process."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ihm") as client,
    ):
        yield client


async def test_readyz_answers_ok_when_postgres_and_redis_answer(
    dsn: str, redis_server: EmbeddedRedis
) -> None:
    async with serving(settings_for(dsn, redis_server.url())) as client:
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")

    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}
    assert alive.json() == {"status": "ok"}


async def test_readyz_names_what_is_down_with_503(dsn: str) -> None:
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"

    async with serving(settings_for(dsn, nothing_listens)) as client:
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")

    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("error")
    assert alive.status_code == 200


async def test_metrics_are_exposed_for_prometheus(dsn: str, redis_server: EmbeddedRedis) -> None:
    async with serving(settings_for(dsn, redis_server.url())) as client:
        metrics = await client.get("/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "python_info" in metrics.text

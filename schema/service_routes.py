"""Operator endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schema.metrics import refresh_check_gauges

READINESS_TIMEOUT_SECONDS = 2.0


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _probe(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, READINESS_TIMEOUT_SECONDS)
    except TimeoutError:
        return name, "timeout"
    except Exception as exc:  # any failure means "not ready"; say which kind
        return name, f"error: {type(exc).__name__}"
    return name, "ok"


async def readyz(request: Request) -> Response:
    state = request.app.state
    results = dict(
        await asyncio.gather(
            _probe("postgres", state.pool.fetchval("SELECT 1")),
            _probe("redis", state.redis.ping()),
        )
    )
    ready = all(v == "ok" for v in results.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": results},
        status_code=200 if ready else 503,
    )


async def metrics(request: Request) -> Response:
    # When Postgres is away, the request and subscription metrics are still worth serving.
    with contextlib.suppress(TimeoutError, OSError, asyncpg.PostgresError):
        await asyncio.wait_for(refresh_check_gauges(request.app.state.pool), 2)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]

"""Prometheus metrics of the API: requests, errors, subscriptions, check results."""

from __future__ import annotations

import time

import asyncpg
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("ihm_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "ihm_http_request_seconds",
    "HTTP request duration",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 12.5),
)
INTEGRATIONS = Gauge(
    "ihm_integrations",
    "Configured integrations by type and current status",
    ["integration_type", "status"],
)
RESULTS = Gauge(
    "ihm_check_results_last_hour",
    "Completed checks in the last hour by type and status",
    ["integration_type", "status"],
)

_CURRENT = """
SELECT c.integration_type, coalesce(s.status, 'unknown') AS status, count(*) AS n
  FROM integration_config c
  LEFT JOIN integration_health_status s USING (org_id, integration_type)
 GROUP BY 1, 2
"""
_LAST_HOUR = """
SELECT integration_type, status, count(*) AS n FROM health_check_results
 WHERE checked_at >= now() - interval '1 hour' GROUP BY 1, 2
"""


async def refresh_check_gauges(pool: asyncpg.Pool) -> None:
    """At scrape time, system-wide counts (no org is named, so nothing is disclosed)."""
    async with pool.acquire() as conn:
        current = await conn.fetch(_CURRENT)
        recent = await conn.fetch(_LAST_HOUR)
    for gauge, rows in ((INTEGRATIONS, current), (RESULTS, recent)):
        gauge.clear()
        for row in rows:
            gauge.labels(row["integration_type"], row["status"]).set(row["n"])


class RequestMetrics:
    """Counts and times HTTP requests by route template (not raw path: bounded labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope.get("method", "?"), name, str(status)).inc()
            LATENCY.labels(name).observe(time.perf_counter() - started)

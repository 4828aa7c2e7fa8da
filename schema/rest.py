"""REST endpoints of DESIGN.md, on the same resolvers and rules as GraphQL.

`{integration}` is the integration's id or its type key. Errors are JSON
`{"error": {"code", "message", ...}}` with the matching HTTP status.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db import admin
from db.health import HistoryRow
from db.scope import as_caller
from resolvers import checks
from resolvers import health as health_resolvers
from resolvers import integrations as integration_resolvers
from resolvers.access import GLOBAL, require
from resolvers.auth import Principal
from resolvers.errors import ApiError, BadUserInput, NotFound
from schema.context import Services
from workers.events import health_json

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass
class RestCaller:
    """The resolvers' Caller for a REST request."""

    principal: Principal
    services: Services

    async def as_caller(
        self, org_id: UUID | None, work: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        async with as_caller(self.services.pool, self.principal.claims_for(org_id)) as conn:
            return await work(conn)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def history_json(row: HistoryRow) -> dict[str, Any]:
    return {
        "status": row.status.upper(),
        "latencyMs": row.latency_ms,
        "checkedAt": _iso(row.checked_at),
        "errorCategory": row.error_category,
        "errorMessage": row.error_message,
        "trigger": row.trigger.upper(),
    }


def _error(exc: ApiError) -> JSONResponse:
    headers = {}
    if "retryAfterSeconds" in exc.extensions:
        headers["Retry-After"] = str(exc.extensions["retryAfterSeconds"])
    return JSONResponse(
        {"error": {"message": exc.message, **exc.as_extensions()}},
        status_code=exc.http_status,
        headers=headers,
    )


def endpoint(
    handler: Callable[[Request, RestCaller], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        services: Services = request.app.state.services
        try:
            principal = await services.verifier.verify_header(request.headers.get("authorization"))
            return await handler(request, RestCaller(principal, services))
        except ApiError as exc:
            return _error(exc)
        except Exception:
            log.exception("rest_internal_error", path=request.url.path)
            return JSONResponse(
                {"error": {"message": "Internal server error.", "code": "INTERNAL_SERVER_ERROR"}},
                status_code=500,
            )

    return run


def _org_param(request: Request) -> UUID | None:
    raw = request.query_params.get("orgId")
    if raw is None:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise BadUserInput("orgId must be a UUID.", field="orgId") from None


async def _integration_type(request: Request, caller: RestCaller) -> tuple[str, UUID | None]:
    """`{integration}` as a type key, or an id resolved to its type (within the caller's org)."""
    ref = request.path_params["integration"]
    org_id = _org_param(request)
    try:
        integration_id = UUID(ref)
    except ValueError:
        return ref, org_id
    # Not through org_health: that needs the read role, and a service may check by id.
    return await integration_resolvers.integration_type_of(caller, integration_id, org_id), org_id


@endpoint
async def get_health(request: Request, caller: RestCaller) -> Response:
    kind, org_id = await _integration_type(request, caller)
    row = await health_resolvers.integration_health(caller, kind, org_id)
    if row is None:
        raise NotFound(f"No {kind!r} integration is configured for this organization.")
    return JSONResponse(health_json(row))


@endpoint
async def get_history(request: Request, caller: RestCaller) -> Response:
    kind, org_id = await _integration_type(request, caller)
    raw = request.query_params.get("hours", "24")
    try:
        # Not str.isdigit(): it accepts "²" and 5,000-digit strings, which int() refuses.
        hours = int(raw)
    except ValueError:
        raise BadUserInput("hours must be a whole number.", field="hours") from None
    if await health_resolvers.integration_health(caller, kind, org_id) is None:
        raise NotFound(f"No {kind!r} integration is configured for this organization.")
    rows = await health_resolvers.health_trend(caller, kind, hours, org_id)
    return JSONResponse([history_json(r) for r in rows])


@endpoint
async def post_check(request: Request, caller: RestCaller) -> Response:
    kind, org_id = await _integration_type(request, caller)
    wait = request.query_params.get("wait", "true").lower() not in ("false", "0", "no")
    services = caller.services
    ticket = await checks.run_check(
        caller,
        queue=services.queue,
        settings=services.settings,
        integration_type=kind,
        org_id=org_id,
        wait=wait,
    )
    return JSONResponse(
        {
            "jobId": ticket.job_id,
            "integrationType": ticket.integration_type,
            "enqueuedAt": ticket.enqueued_at.isoformat(),
            "result": ticket.health,
        },
        # 202 Accepted: the check is queued (wait=false) or still running after the wait.
        status_code=200 if ticket.health else 202,
    )


PROVIDER_COLUMNS = (
    "integrationType",
    "displayName",
    "integrations",
    "healthy",
    "degraded",
    "unreachable",
    "unknown",
    "checks",
    "successRate",
    "avgLatencyMs",
    "p95LatencyMs",
)


@endpoint
async def admin_health(request: Request, caller: RestCaller) -> Response:
    require(caller.principal, GLOBAL, "read system-wide health")
    now = datetime.now(UTC)
    counts, scheduler = await health_resolvers.global_counts(caller)
    stats = await caller.as_caller(
        None, lambda c: admin.provider_stats(c, now - timedelta(hours=24))
    )
    providers = [
        dict(
            zip(
                PROVIDER_COLUMNS,
                (
                    s.integration_type,
                    s.display_name,
                    s.integrations,
                    s.healthy,
                    s.degraded,
                    s.unreachable,
                    s.unknown,
                    s.checks,
                    s.success_rate,
                    s.avg_latency_ms,
                    s.p95_latency_ms,
                ),
                strict=True,
            )
        )
        for s in stats
    ]
    if request.query_params.get("format") == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=PROVIDER_COLUMNS)
        writer.writeheader()
        writer.writerows(providers)
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="integration-health-{now:%Y%m%d}.csv"'
            },
        )
    unhealthy = await caller.as_caller(None, lambda c: admin.unhealthy_integrations(c, 50))
    return JSONResponse(
        {
            "generatedAt": now.isoformat(),
            "organizations": counts.organizations,
            "integrations": counts.integrations,
            "healthy": counts.healthy,
            "degraded": counts.degraded,
            "unreachable": counts.unreachable,
            "unknown": counts.unknown,
            "providers": providers,
            "unhealthyIntegrations": [health_json(r) for r in unhealthy],
            "scheduler": {
                "lateRuns24h": scheduler.late_runs,
                "p50DriftSeconds": scheduler.p50_drift_seconds,
                "maxDriftSeconds": scheduler.max_drift_seconds,
            },
        }
    )


routes = [
    Route("/api/integrations/{integration}/health", get_health, methods=["GET"]),
    Route("/api/integrations/{integration}/health/check", post_check, methods=["POST"]),
    Route("/api/integrations/{integration}/health/history", get_history, methods=["GET"]),
    Route("/api/admin/integrations/health", admin_health, methods=["GET"]),
]

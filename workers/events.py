"""StatusChange events, published to Redis after the run's transaction commits.

Every completed check is published, with `changed` telling a status change
from a repeat, so `statusChanged(includeUnchanged: true)` subscribers get
every check and the others only flips. Each event carries the health
snapshot, so a dashboard needs no query to redraw.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from db.health import IntegrationHealthRow, StatusRow
from db.integrations import Integration

ALL_ORGS_CHANNEL = "ihm:status:all"
# Every alert event too, for the API's cache of health reads (schema/response_cache.py).
ALL_ORGS_ALERTS_CHANNEL = "ihm:alerts:all"

CONNECTION_STATES = {
    "healthy": "CONNECTED",
    "degraded": "DEGRADED",
    "unreachable": "ERROR",
    "unknown": "PENDING",
}


def org_channel(org_id: UUID | str) -> str:
    return f"ihm:status:org:{org_id}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def health_json(row: IntegrationHealthRow) -> dict[str, Any]:
    """The contract's IntegrationHealth as JSON (camelCase, enums upper-case): the one
    shape events and the REST endpoints share."""
    status = row.status or "unknown"
    error = None
    if status not in ("healthy", "unknown") and row.error_category:
        error = {
            "category": row.error_category,
            "message": row.error_message,
            "guidance": row.error_guidance,
            "recoveryAction": row.recovery_action,
            "docsUrl": row.docs_url,
        }
    return {
        "integrationId": str(row.integration_id),
        "orgId": str(row.org_id),
        "integrationType": row.integration_type,
        "displayName": row.display_name,
        "enabled": row.enabled,
        "status": status.upper(),
        "connectionState": CONNECTION_STATES[status],
        "latencyMs": row.latency_ms,
        "checkedAt": _iso(row.checked_at),
        "lastSuccessAt": _iso(row.last_success_at),
        "statusSince": _iso(row.status_since),
        "consecutiveFailures": row.consecutive_failures,
        "nextCheckAt": _iso(row.next_check_at),
        "error": error,
    }


def health_snapshot(row: StatusRow, integration: Integration, display_name: str) -> dict[str, Any]:
    """The health of a status row just written, for its event."""
    return health_json(
        IntegrationHealthRow(
            integration_id=integration.id,
            org_id=row.org_id,
            integration_type=row.integration_type,
            display_name=display_name,
            enabled=integration.enabled,
            monitoring_mode=integration.monitoring_mode,
            next_check_at=integration.next_check_at,
            status=row.status,
            latency_ms=row.latency_ms,
            checked_at=row.checked_at,
            status_since=row.status_since,
            last_success_at=row.last_success_at,
            consecutive_failures=row.consecutive_failures,
            error_category=row.error_category,
            error_message=row.error_message,
            error_guidance=row.error_guidance,
            recovery_action=row.recovery_action,
            docs_url=row.docs_url,
        )
    )


def status_event(row: StatusRow, integration: Integration, display_name: str) -> dict[str, Any]:
    return {
        "orgId": str(row.org_id),
        "integrationType": row.integration_type,
        "previousStatus": (row.previous_status or "unknown").upper(),
        "status": row.status.upper(),
        "changed": row.flipped,
        "changedAt": _iso(row.checked_at),
        "health": health_snapshot(row, integration, display_name),
    }


async def publish_status_events(redis: Redis, events: Sequence[dict[str, Any]]) -> None:
    """One round trip for the whole run: the org's channel and the all-orgs channel."""
    if not events:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            message = json.dumps(event, separators=(",", ":"))
            pipe.publish(org_channel(event["orgId"]), message)
            pipe.publish(ALL_ORGS_CHANNEL, message)
        await pipe.execute()


def alert_channel(org_id: UUID | str) -> str:
    return f"ihm:alerts:org:{org_id}"


def alert_event(alert: Any) -> dict[str, Any]:
    """An Alert row (db.alerts.Alert) as the JSON the alertChanged subscription reads."""
    fields = (
        "id",
        "org_id",
        "integration_type",
        "kind",
        "severity",
        "state",
        "category",
        "title",
        "message",
        "guidance",
        "opened_at",
        "last_seen_at",
        "occurrences",
        "acknowledged_at",
        "dismissed_at",
        "dismissed_by",
        "resolved_at",
    )
    event: dict[str, Any] = {}
    for name in fields:
        value = getattr(alert, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, UUID):
            value = str(value)
        event[name] = value
    return event


async def publish_alert_events(redis: Redis, alerts: Sequence[Any]) -> None:
    if not alerts:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for alert in alerts:
            message = json.dumps(alert_event(alert))
            pipe.publish(alert_channel(alert.org_id), message)
            pipe.publish(ALL_ORGS_ALERTS_CHANNEL, message)
        await pipe.execute()

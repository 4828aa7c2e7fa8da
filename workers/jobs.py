"""arq jobs wrapping the runner: check one org, check one integration."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from workers.runner import Outcome, Runner, run_health_checks


def check_job_id(org_id: UUID | str, integration_type: str) -> str:
    """One in-flight manual check per integration: a second request joins the first."""
    return f"check:{org_id}:{integration_type}"


def cooldown_key(org_id: UUID | str, integration_type: str) -> str:
    """Set when a manual check finishes; the next one waits until it expires."""
    return f"ihm:cooldown:{org_id}:{integration_type}"


def _summary(outcome: Outcome) -> dict[str, Any]:
    error = outcome.result.error
    return {
        "integrationType": outcome.integration_type,
        "status": outcome.result.status.value,
        "latencyMs": outcome.result.latency_ms,
        "category": error.category.value if error else None,
        "stored": outcome.status is not None,
        "health": outcome.event["health"] if outcome.event else None,
    }


async def check_org(
    ctx: dict[str, Any],
    org_id: str,
    *,
    trigger: str = "scheduled",
    scheduled_for: datetime | None = None,
    idempotency_key: str | None = None,
) -> list[dict[str, Any]]:
    runner: Runner = ctx["runner"]
    outcomes = await run_health_checks(
        runner,
        UUID(org_id),
        trigger=trigger,
        scheduled_for=scheduled_for,
        idempotency_key=idempotency_key,
    )
    return [_summary(o) for o in outcomes]


async def check_integration(
    ctx: dict[str, Any], org_id: str, integration_type: str, *, trigger: str = "manual"
) -> dict[str, Any] | None:
    """The fresh health snapshot, for `runCheck(wait: true)`; None when nothing ran."""
    runner: Runner = ctx["runner"]
    outcomes = await run_health_checks(
        runner, UUID(org_id), integration_types_filter={integration_type}, trigger=trigger
    )
    cooldown = ctx["settings"].manual_check_cooldown_seconds if "settings" in ctx else 0
    if trigger == "manual" and cooldown > 0:
        await ctx["redis"].set(cooldown_key(org_id, integration_type), "1", px=int(cooldown * 1000))
    return _summary(outcomes[0]) if outcomes else None

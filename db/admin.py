"""System-wide figures for global admins, through SECURITY DEFINER functions (0006).

Each function checks the caller's claims itself: anyone but a global admin
gets asyncpg.InsufficientPrivilegeError, whatever connection they use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from db.health import IntegrationHealthRow


@dataclass(frozen=True)
class ProviderStats:
    integration_type: str
    display_name: str
    integrations: int
    healthy: int
    degraded: int
    unreachable: int
    unknown: int  # configured, never checked
    checks: int  # logged since the window's start
    success_rate: float | None  # healthy checks / checks; None without checks
    avg_latency_ms: float | None
    p95_latency_ms: float | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ProviderStats:
        return cls(**dict(row))


@dataclass(frozen=True)
class SchedulerStats:
    late_runs: int  # started more than 5 minutes after their scheduled slot
    p50_drift_seconds: float | None  # None: no scheduled check in the window
    max_drift_seconds: float | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> SchedulerStats:
        return cls(**dict(row))


_UNHEALTHY = """
SELECT integration_id, org_id, integration_type, display_name, enabled, monitoring_mode,
       next_check_at, status, latency_ms, checked_at, status_since, last_success_at,
       consecutive_failures, error_category, error_message, error_guidance, recovery_action,
       docs_url
  FROM ihm_global_unhealthy_integrations($1)
"""
_PROVIDER_STATS = """
SELECT integration_type, display_name, integrations, healthy, degraded, unreachable, unknown,
       checks, success_rate, avg_latency_ms, p95_latency_ms
  FROM ihm_global_provider_stats($1)
"""
_SCHEDULER_STATS = """
SELECT late_runs, p50_drift_seconds, max_drift_seconds FROM ihm_global_scheduler_stats($1)
"""


async def unhealthy_integrations(
    conn: asyncpg.Connection, limit: int
) -> list[IntegrationHealthRow]:
    """Unreachable, then degraded, then never checked; the longest failing first in each."""
    return [IntegrationHealthRow.from_row(r) for r in await conn.fetch(_UNHEALTHY, limit)]


async def provider_stats(conn: asyncpg.Connection, since: datetime) -> list[ProviderStats]:
    """One row per integration type (by display name), checks counted from `since`."""
    return [ProviderStats.from_row(r) for r in await conn.fetch(_PROVIDER_STATS, since)]


async def scheduler_stats(conn: asyncpg.Connection, since: datetime) -> SchedulerStats:
    return SchedulerStats.from_row(await conn.fetchrow(_SCHEDULER_STATS, since))

"""Alert rules: at most one org-wide rule (integration_type NULL) and one per type.

`effective_rule` answers what applies to an integration: its type's rule,
else the org-wide rule, else the contract's defaults. It returns an
`EffectiveRule` rather than an `AlertRule`, so a stored rule always has an id
and the defaults are never mistaken for a saved row (`rule_id` is None then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

# The contract's AlertRuleInput defaults, and the table's for recovery_threshold.
DEFAULT_FAILURE_THRESHOLD = 2
DEFAULT_RECOVERY_THRESHOLD = 1
DEFAULT_REPEAT_INTERVAL_MINUTES = 60
DEFAULT_NOTIFY_ON_RECOVERY = True
DEFAULT_MIN_SEVERITY = "WARNING"
DEFAULT_GROUP_WAIT_SECONDS = 30


@dataclass(frozen=True)
class AlertRule:
    id: UUID
    org_id: UUID
    integration_type: str | None  # None: every integration of the org
    failure_threshold: int
    recovery_threshold: int
    degraded_latency_ms: int | None
    repeat_interval_minutes: int
    notify_on_recovery: bool
    min_severity: str  # INFO | WARNING | CRITICAL
    group_wait_seconds: int
    silenced_until: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> AlertRule:
        return cls(**{name: row[name] for name in _FIELDS})


@dataclass(frozen=True)
class EffectiveRule:
    """The settings that apply to one integration, and which stored rule they came from."""

    org_id: UUID
    integration_type: str
    rule_id: UUID | None  # None: no rule stored, the defaults apply
    failure_threshold: int
    recovery_threshold: int
    degraded_latency_ms: int | None
    repeat_interval_minutes: int
    notify_on_recovery: bool
    min_severity: str
    group_wait_seconds: int
    silenced_until: datetime | None

    @property
    def is_default(self) -> bool:
        return self.rule_id is None

    def silenced_at(self, now: datetime) -> bool:
        return self.silenced_until is not None and now < self.silenced_until

    @classmethod
    def default(cls, org_id: UUID, integration_type: str) -> EffectiveRule:
        return cls(
            org_id=org_id,
            integration_type=integration_type,
            rule_id=None,
            failure_threshold=DEFAULT_FAILURE_THRESHOLD,
            recovery_threshold=DEFAULT_RECOVERY_THRESHOLD,
            degraded_latency_ms=None,
            repeat_interval_minutes=DEFAULT_REPEAT_INTERVAL_MINUTES,
            notify_on_recovery=DEFAULT_NOTIFY_ON_RECOVERY,
            min_severity=DEFAULT_MIN_SEVERITY,
            group_wait_seconds=DEFAULT_GROUP_WAIT_SECONDS,
            silenced_until=None,
        )

    @classmethod
    def of(cls, rule: AlertRule, integration_type: str) -> EffectiveRule:
        return cls(
            org_id=rule.org_id,
            integration_type=integration_type,
            rule_id=rule.id,
            failure_threshold=rule.failure_threshold,
            recovery_threshold=rule.recovery_threshold,
            degraded_latency_ms=rule.degraded_latency_ms,
            repeat_interval_minutes=rule.repeat_interval_minutes,
            notify_on_recovery=rule.notify_on_recovery,
            min_severity=rule.min_severity,
            group_wait_seconds=rule.group_wait_seconds,
            silenced_until=rule.silenced_until,
        )


_FIELDS = (
    "id",
    "org_id",
    "integration_type",
    "failure_threshold",
    "recovery_threshold",
    "degraded_latency_ms",
    "repeat_interval_minutes",
    "notify_on_recovery",
    "min_severity",
    "group_wait_seconds",
    "silenced_until",
    "updated_at",
)
_COLUMNS = ", ".join(_FIELDS)

# The unique constraint is NULLS NOT DISTINCT, so the org-wide rule (NULL type)
# conflicts with itself like any other. recovery_threshold is not part of the
# API's input: NULL keeps what is stored (the default on insert).
_UPSERT = f"""
INSERT INTO alert_rules AS r
    (org_id, integration_type, failure_threshold, degraded_latency_ms, repeat_interval_minutes,
     notify_on_recovery, min_severity, group_wait_seconds, silenced_until, recovery_threshold)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10, {DEFAULT_RECOVERY_THRESHOLD}))
ON CONFLICT (org_id, integration_type) DO UPDATE
   SET failure_threshold = EXCLUDED.failure_threshold,
       degraded_latency_ms = EXCLUDED.degraded_latency_ms,
       repeat_interval_minutes = EXCLUDED.repeat_interval_minutes,
       notify_on_recovery = EXCLUDED.notify_on_recovery,
       min_severity = EXCLUDED.min_severity,
       group_wait_seconds = EXCLUDED.group_wait_seconds,
       silenced_until = EXCLUDED.silenced_until,
       recovery_threshold = coalesce($10, r.recovery_threshold),
       updated_at = now()
RETURNING {_COLUMNS}
"""
_LIST_FOR_ORG = f"""
SELECT {_COLUMNS} FROM alert_rules WHERE org_id = $1
 ORDER BY integration_type NULLS FIRST
"""
# Per requested (org, type): the type's own rule sorts before the org-wide one.
_EFFECTIVE = f"""
SELECT DISTINCT ON (k.org_id, k.integration_type)
       k.integration_type AS requested_type, {", ".join("r." + f for f in _FIELDS)}
  FROM unnest($1::uuid[], $2::text[]) AS k(org_id, integration_type)
  JOIN alert_rules r
    ON r.org_id = k.org_id
   AND (r.integration_type = k.integration_type OR r.integration_type IS NULL)
 ORDER BY k.org_id, k.integration_type, r.integration_type NULLS LAST
"""


async def upsert(
    conn: asyncpg.Connection,
    *,
    org_id: UUID,
    integration_type: str | None,
    failure_threshold: int,
    degraded_latency_ms: int | None,
    repeat_interval_minutes: int,
    notify_on_recovery: bool,
    min_severity: str,
    group_wait_seconds: int,
    silenced_until: datetime | None,
    recovery_threshold: int | None = None,
) -> AlertRule:
    """Create or replace the org's rule for that type (None: the org-wide rule).

    Out-of-range values fail with asyncpg.CheckViolationError; an unknown type
    with asyncpg.ForeignKeyViolationError.
    """
    row = await conn.fetchrow(
        _UPSERT,
        org_id,
        integration_type,
        failure_threshold,
        degraded_latency_ms,
        repeat_interval_minutes,
        notify_on_recovery,
        min_severity,
        group_wait_seconds,
        silenced_until,
        recovery_threshold,
    )
    return AlertRule.from_row(row)


async def list_for_org(conn: asyncpg.Connection, org_id: UUID) -> list[AlertRule]:
    """The org-wide rule first, then per type."""
    return [AlertRule.from_row(r) for r in await conn.fetch(_LIST_FOR_ORG, org_id)]


async def effective_rule(
    conn: asyncpg.Connection, org_id: UUID, integration_type: str
) -> EffectiveRule:
    return (await effective_rules(conn, [(org_id, integration_type)]))[(org_id, integration_type)]


async def effective_rules(
    conn: asyncpg.Connection, keys: Sequence[tuple[UUID, str]]
) -> dict[tuple[UUID, str], EffectiveRule]:
    """`effective_rule` for many (org, type) pairs in one query (the worker's runs)."""
    found = {key: EffectiveRule.default(*key) for key in keys}
    if not found:
        return found
    orgs, types = zip(*found, strict=True)
    for row in await conn.fetch(_EFFECTIVE, list(orgs), list(types)):
        key = (row["org_id"], row["requested_type"])
        found[key] = EffectiveRule.of(AlertRule.from_row(row), row["requested_type"])
    return found

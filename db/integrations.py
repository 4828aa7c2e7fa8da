"""Each org's configured integrations (integration_config)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class Integration:
    id: UUID
    org_id: UUID
    integration_type: str
    enabled: bool
    monitoring_mode: str
    check_interval_seconds: int
    config: dict[str, Any]
    next_check_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Integration:
        return cls(**dict(row))


_COLUMNS = (
    "id, org_id, integration_type, enabled, monitoring_mode, check_interval_seconds, "
    "config, next_check_at"
)

# Interval left out (NULL): the type's default.
_UPSERT = f"""
INSERT INTO integration_config
    (org_id, integration_type, enabled, monitoring_mode, check_interval_seconds, config)
SELECT $1, $2, $3, $4, coalesce($5, t.default_interval_seconds), $6
  FROM integration_types t WHERE t.key = $2
ON CONFLICT (org_id, integration_type) DO UPDATE
   SET enabled = EXCLUDED.enabled,
       monitoring_mode = EXCLUDED.monitoring_mode,
       check_interval_seconds = EXCLUDED.check_interval_seconds,
       config = EXCLUDED.config
RETURNING {_COLUMNS}
"""
_LIST_FOR_ORGS = (
    f"SELECT {_COLUMNS} FROM integration_config WHERE org_id = ANY($1::uuid[])"
    " ORDER BY org_id, integration_type"
)
_GET = f"SELECT {_COLUMNS} FROM integration_config WHERE org_id = $1 AND integration_type = $2"


async def upsert(
    conn: asyncpg.Connection,
    org_id: UUID,
    integration_type: str,
    *,
    enabled: bool = True,
    monitoring_mode: str = "ACTIVE",
    check_interval_seconds: int | None = None,
    config: dict[str, Any] | None = None,
) -> Integration:
    row = await conn.fetchrow(
        _UPSERT,
        org_id,
        integration_type,
        enabled,
        monitoring_mode,
        check_interval_seconds,
        config or {},
    )
    if row is None:
        raise LookupError(f"unknown integration type {integration_type!r}")
    return Integration.from_row(row)


_LIST_WITH_CREDENTIALS = f"""
SELECT {", ".join("c." + c.strip() for c in _COLUMNS.split(","))},
       (cr.integration_id IS NOT NULL) AS has_credentials
  FROM integration_config c
  LEFT JOIN integration_credentials cr ON cr.integration_id = c.id AND cr.org_id = c.org_id
 WHERE c.org_id = $1
 ORDER BY c.integration_type
"""
_SET_ENABLED = f"""
UPDATE integration_config SET enabled = $3 WHERE org_id = $1 AND integration_type = $2
RETURNING {_COLUMNS}
"""
_REMOVE = "DELETE FROM integration_config WHERE org_id = $1 AND integration_type = $2"


async def list_with_credentials(
    conn: asyncpg.Connection, org_id: UUID
) -> list[tuple[Integration, bool]]:
    """Each integration and whether credentials are stored (no secret column is read)."""
    rows = await conn.fetch(_LIST_WITH_CREDENTIALS, org_id)
    result = []
    for row in rows:
        values = dict(row)
        has = values.pop("has_credentials")
        result.append((Integration(**values), has))
    return result


async def set_enabled(
    conn: asyncpg.Connection, org_id: UUID, integration_type: str, enabled: bool
) -> Integration | None:
    row = await conn.fetchrow(_SET_ENABLED, org_id, integration_type, enabled)
    return Integration.from_row(row) if row else None


async def remove(conn: asyncpg.Connection, org_id: UUID, integration_type: str) -> bool:
    status: str = await conn.execute(_REMOVE, org_id, integration_type)
    return status == "DELETE 1"


async def list_for_org(conn: asyncpg.Connection, org_id: UUID) -> list[Integration]:
    return (await list_for_orgs(conn, [org_id]))[org_id]


async def list_for_orgs(
    conn: asyncpg.Connection, org_ids: Sequence[UUID]
) -> dict[UUID, list[Integration]]:
    """Several orgs' integrations in one query (the worker's batched runs)."""
    found: dict[UUID, list[Integration]] = {org: [] for org in org_ids}
    for row in await conn.fetch(_LIST_FOR_ORGS, list(org_ids)):
        integration = Integration.from_row(row)
        found[integration.org_id].append(integration)
    return found


async def get(conn: asyncpg.Connection, org_id: UUID, integration_type: str) -> Integration | None:
    row = await conn.fetchrow(_GET, org_id, integration_type)
    return Integration.from_row(row) if row else None

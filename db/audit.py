"""The audit log: who did what, with the arguments minus every secret."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from db.pagination import Page, keyset, page_of

REDACTED = "[redacted]"
# A key naming any of these (case, `_` and `-` ignored) has its value replaced.
SECRET_KEY_MARKERS = (
    "token",
    "secret",
    "password",
    "credential",
    "apikey",
    "api_key",
    "authorization",
    "privatekey",
)


@dataclass(frozen=True)
class AuditEvent:
    id: UUID
    at: datetime
    actor: str
    role: str  # member | coordinator | org_admin | service | global_admin
    org_id: UUID | None
    action: str
    details: dict[str, Any]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> AuditEvent:
        return cls(**dict(row))


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    compact = lowered.replace("_", "").replace("-", "")
    return any(marker in lowered or marker in compact for marker in SECRET_KEY_MARKERS)


def redact(value: Any) -> Any:
    """A copy of `value` with the value of every secret-named key, at any depth, redacted.

    UUIDs and dates become strings, so the result is plain JSON.
    """
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


_COLUMNS = "id, at, actor, role, org_id, action, details"
_RECORD = """
INSERT INTO audit_log (actor, role, org_id, action, details) VALUES ($1, $2, $3, $4, $5)
"""
_LIST_EVENTS = f"""
SELECT {_COLUMNS}
  FROM audit_log
 WHERE org_id = $1
   AND ($2::timestamptz IS NULL OR (at, id) < ($2, $3::uuid))
 ORDER BY at DESC, id DESC
 LIMIT $4
"""


async def record(
    conn: asyncpg.Connection,
    *,
    actor: str,
    role: str,
    org_id: UUID | None,
    action: str,
    details: Mapping[str, Any],
) -> None:
    """Append an event; secrets in `details` never reach the table.

    As the API role the event must belong to the caller's org (row-level security).
    """
    await conn.execute(_RECORD, actor, role, org_id, action, redact(details))


async def list_events(
    conn: asyncpg.Connection, org_id: UUID, *, first: int, after: str | None
) -> Page[AuditEvent]:
    """Newest first (at, id). ValueError for a bad `first` or cursor."""
    ks = keyset(first, after)
    rows = await conn.fetch(_LIST_EVENTS, org_id, ks.at, ks.id, ks.limit)
    return page_of([AuditEvent.from_row(r) for r in rows], first, lambda e: (e.at, e.id))

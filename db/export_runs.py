"""Export runs reported by the export job (or an org admin), idempotent per key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from db.pagination import Page, keyset, page_of


@dataclass(frozen=True)
class ExportRun:
    id: UUID
    org_id: UUID
    integration_type: str
    idempotency_key: str
    status: str  # PENDING | RUNNING | SUCCEEDED | FAILED
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error_category: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ExportRun:
        return cls(**{name: row[name] for name in _FIELDS})


class KeyConflict(Exception):
    """The idempotency key already names a run of another integration type (the API: CONFLICT)."""

    def __init__(self, idempotency_key: str) -> None:
        self.idempotency_key = idempotency_key
        super().__init__(
            f"export run {idempotency_key!r} was reported for another integration type"
        )


_FIELDS = (
    "id",
    "org_id",
    "integration_type",
    "idempotency_key",
    "status",
    "scheduled_for",
    "started_at",
    "finished_at",
    "error_category",
    "error_message",
    "created_at",
    "updated_at",
)
_COLUMNS = ", ".join(_FIELDS)

# A report is the run's current state. scheduled_for and started_at keep an
# earlier report's value when a later one leaves them out (they do not
# un-happen); the rest is replaced, so a retried run that succeeds loses its
# old error. The WHERE turns a key reused for another type into no row at all.
_REPORT = f"""
INSERT INTO export_runs AS e
    (org_id, integration_type, idempotency_key, status, scheduled_for, started_at,
     finished_at, error_category, error_message)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (org_id, idempotency_key) DO UPDATE
   SET status = EXCLUDED.status,
       scheduled_for = coalesce(EXCLUDED.scheduled_for, e.scheduled_for),
       started_at = coalesce(EXCLUDED.started_at, e.started_at),
       finished_at = EXCLUDED.finished_at,
       error_category = EXCLUDED.error_category,
       error_message = EXCLUDED.error_message,
       updated_at = now()
 WHERE e.integration_type = EXCLUDED.integration_type
RETURNING {_COLUMNS}, (xmax = 0) AS created
"""
_LIST_FOR_ORG = f"""
SELECT {_COLUMNS}
  FROM export_runs
 WHERE org_id = $1
   AND ($2::text IS NULL OR status = $2)
   AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT $5
"""


async def report(
    conn: asyncpg.Connection,
    *,
    org_id: UUID,
    integration_type: str,
    idempotency_key: str,
    status: str,
    scheduled_for: datetime | None,
    started_at: datetime | None,
    finished_at: datetime | None,
    error_category: str | None,
    error_message: str | None,
) -> tuple[ExportRun, bool]:
    """Insert the run or update the one with this key; True when this call created it.

    Raises `KeyConflict` when the key belongs to a run of another integration type.
    """
    row = await conn.fetchrow(
        _REPORT,
        org_id,
        integration_type,
        idempotency_key,
        status,
        scheduled_for,
        started_at,
        finished_at,
        error_category,
        error_message,
    )
    if row is None:
        raise KeyConflict(idempotency_key)
    return ExportRun.from_row(row), bool(row["created"])


async def list_for_org(
    conn: asyncpg.Connection,
    org_id: UUID,
    *,
    status: str | None,
    first: int,
    after: str | None,
) -> Page[ExportRun]:
    """Newest first (created_at, id). ValueError for a bad `first` or cursor."""
    ks = keyset(first, after)
    rows = await conn.fetch(_LIST_FOR_ORG, org_id, status, ks.at, ks.id, ks.limit)
    return page_of([ExportRun.from_row(r) for r in rows], first, lambda r: (r.created_at, r.id))

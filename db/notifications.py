"""In-app notifications (one per org) and each user's read state (notification_reads).

The worker creates notifications; API callers list them, count the unread ones
and mark them read, each user for themselves: `read_at` is always the
current user's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from db.pagination import Page, keyset, page_of


@dataclass(frozen=True)
class Notification:
    id: UUID
    org_id: UUID
    alert_id: UUID | None
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None  # when this user read it; None: unread

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Notification:
        return cls(**dict(row))


_LIST_FOR_USER = """
SELECT n.id, n.org_id, n.alert_id, n.title, n.body, n.created_at, r.read_at
  FROM notifications n
  LEFT JOIN notification_reads r
         ON r.notification_id = n.id AND r.org_id = n.org_id AND r.user_id = $2
 WHERE n.org_id = $1
   AND (NOT $3::boolean OR r.read_at IS NULL)
   AND ($4::timestamptz IS NULL OR (n.created_at, n.id) < ($4, $5::uuid))
 ORDER BY n.created_at DESC, n.id DESC
 LIMIT $6
"""
_UNREAD_COUNT = """
SELECT count(*)
  FROM notifications n
 WHERE n.org_id = $1
   AND NOT EXISTS (SELECT 1 FROM notification_reads r
                    WHERE r.notification_id = n.id AND r.org_id = n.org_id AND r.user_id = $2)
"""
# The no-op DO UPDATE (rather than DO NOTHING) returns the existing read row
# too, so a second call, or a concurrent one, answers the first read time.
_MARK_READ = """
WITH n AS (
    SELECT id, org_id, alert_id, title, body, created_at
      FROM notifications WHERE id = $1 AND org_id = $2
), r AS (
    INSERT INTO notification_reads AS r (notification_id, org_id, user_id)
    SELECT id, org_id, $3 FROM n
    ON CONFLICT (notification_id, user_id) DO UPDATE SET read_at = r.read_at
    RETURNING notification_id, read_at
)
SELECT n.id, n.org_id, n.alert_id, n.title, n.body, n.created_at, r.read_at
  FROM n JOIN r ON r.notification_id = n.id
"""
_CREATE = """
INSERT INTO notifications (org_id, alert_id, title, body) VALUES ($1, $2, $3, $4)
RETURNING id, org_id, alert_id, title, body, created_at, NULL::timestamptz AS read_at
"""


async def list_for_user(
    conn: asyncpg.Connection,
    org_id: UUID,
    user_id: str,
    *,
    unread_only: bool,
    first: int,
    after: str | None,
) -> Page[Notification]:
    """Newest first (created_at, id). ValueError for a bad `first` or cursor."""
    ks = keyset(first, after)
    rows = await conn.fetch(_LIST_FOR_USER, org_id, user_id, unread_only, ks.at, ks.id, ks.limit)
    items = [Notification.from_row(r) for r in rows]
    return page_of(items, first, lambda n: (n.created_at, n.id))


async def unread_count(conn: asyncpg.Connection, org_id: UUID, user_id: str) -> int:
    count: int = await conn.fetchval(_UNREAD_COUNT, org_id, user_id)
    return count


async def mark_read(
    conn: asyncpg.Connection, notification_id: UUID, org_id: UUID, user_id: str
) -> Notification | None:
    """Mark read for this user (the first read time stays); None when not found or not visible."""
    row = await conn.fetchrow(_MARK_READ, notification_id, org_id, user_id)
    return Notification.from_row(row) if row else None


async def create(
    conn: asyncpg.Connection, *, org_id: UUID, alert_id: UUID | None, title: str, body: str
) -> Notification:
    """Service role: the API may read notifications, not write them."""
    row = await conn.fetchrow(_CREATE, org_id, alert_id, title, body)
    return Notification.from_row(row)

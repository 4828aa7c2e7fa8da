"""The notification outbox: messages written with the alert, delivered later, at least once.

`enqueue` runs inside the transaction that raised the alert (it never commits),
so a message exists exactly when its alert does. It writes the in-app
notification (in-app is the floor: every message is there, whatever happens
to the other channels) and one outbox row per eligible EMAIL/WEBHOOK/APPRISE
channel. The worker's dispatcher then claims due rows (`claim_due`: a lease,
so a worker that dies mid-send lets another one retry) and records each
attempt (`finish`: compare-and-set on the attempt number, so a worker whose
lease ran out cannot overwrite the next worker's outcome).

Payloads never hold secrets: channel targets and signing secrets stay in the
vault and are read by the sender only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

SEVERITIES = ("INFO", "WARNING", "CRITICAL")  # ascending
DELIVERY_KINDS = ("EMAIL", "WEBHOOK", "APPRISE")  # IN_APP needs no outbox row
PAYLOAD_VERSION = 1

# What an attempt may end in; the row's state follows (RETRY leaves it PENDING).
DELIVERED, RETRY, FAILED = "DELIVERED", "RETRY", "FAILED"
_STATE_AFTER = {DELIVERED: "DELIVERED", RETRY: "PENDING", FAILED: "FAILED"}


@dataclass(frozen=True)
class OutboxMessage:
    id: UUID
    org_id: UUID
    channel_id: UUID | None
    alert_id: UUID | None
    idempotency_key: str
    payload: dict[str, Any]
    state: str  # PENDING | DELIVERED | FAILED
    attempts: int
    not_before: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    last_attempt_at: datetime | None
    delivery_log: list[dict[str, Any]]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> OutboxMessage:
        data = dict(row)
        data["payload"] = json.loads(data["payload"])
        data["delivery_log"] = json.loads(data["delivery_log"])
        return cls(**data)


@dataclass(frozen=True)
class Claimed:
    """A message leased to one worker for one attempt, with its channel's public columns."""

    id: UUID
    org_id: UUID
    channel_id: UUID | None
    channel_kind: str | None  # None: the channel is gone
    channel_enabled: bool
    channel_target_masked: str | None
    alert_id: UUID | None
    idempotency_key: str
    payload: dict[str, Any]
    attempt: int  # 1 for the first attempt
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Claimed:
        data = dict(row)
        data["payload"] = json.loads(data["payload"])
        return cls(**data)


# -- payloads (pure) ------------------------------------------------------------------

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")


def plain_text(severity: str, title: str, body: str) -> str:
    """The message as plain text without links (SMS-like and push targets; a URL may hold a
    token, and a link in an alert is a phishing pattern we would rather not teach)."""
    text = f"[{severity}] {title}\n\n{body}".strip()
    return _URL.sub("[link removed]", text)


def build_payload(
    *,
    org_id: UUID,
    alert_id: UUID | None,
    severity: str,
    title: str,
    body: str,
    idempotency_key: str,
    created_at: datetime,
    group_key: str | None = None,
    message_type: str = "alert",
) -> dict[str, Any]:
    """The JSON a webhook receives (camelCase), also what the other channels render from."""
    return {
        "version": PAYLOAD_VERSION,
        "type": message_type,
        "orgId": str(org_id),
        "alertId": str(alert_id) if alert_id else None,
        "severity": severity,
        "title": title,
        "body": body,
        "text": plain_text(severity, title, body),
        "createdAt": created_at.astimezone(UTC).isoformat(),
        "idempotencyKey": idempotency_key,
        "groupKey": group_key,
    }


def channel_idempotency_key(idempotency_key: str, channel_id: UUID) -> str:
    return f"{idempotency_key}:{channel_id}"


# -- SQL ------------------------------------------------------------------------------

_COLUMNS = (
    "id, org_id, channel_id, alert_id, idempotency_key, payload::text AS payload, state, "
    "attempts, not_before, last_error, created_at, delivered_at, last_attempt_at, "
    "delivery_log::text AS delivery_log"
)
_INSERT_NOTIFICATION = """
INSERT INTO notifications (org_id, alert_id, title, body, idempotency_key)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (org_id, idempotency_key) DO NOTHING
"""
# Parameters as text cast in SQL: correct with or without the pool's JSON codecs.
_INSERT_OUTBOX = """
INSERT INTO notification_outbox (org_id, channel_id, alert_id, idempotency_key, payload, not_before)
SELECT c.org_id, c.id, $2, $3 || ':' || c.id::text,
       $4::text::jsonb || jsonb_build_object('idempotencyKey', $3 || ':' || c.id::text,
                                             'channelKind', c.kind),
       coalesce($5::timestamptz, now())
  FROM notification_channels c
 WHERE c.org_id = $1
   AND c.enabled
   AND c.kind = ANY($6::text[])
   AND array_position($7::text[], c.min_severity) <= array_position($7::text[], $8::text)
 ORDER BY c.created_at, c.id
ON CONFLICT (idempotency_key) DO NOTHING
"""
# The claim is the lease: not_before moves past the attempt's longest plausible
# duration, so a worker that dies after committing this leaves the row to be
# claimed again once the lease runs out (at least once).
_CLAIM = """
WITH due AS (
    SELECT id, channel_id
      FROM notification_outbox
     WHERE state = 'PENDING' AND not_before <= $1
     ORDER BY not_before, created_at
     LIMIT $2
       FOR UPDATE SKIP LOCKED
)
UPDATE notification_outbox o
   SET attempts = o.attempts + 1,
       not_before = $1 + $3::interval,
       last_attempt_at = $1
  FROM due LEFT JOIN notification_channels c ON c.id = due.channel_id
 WHERE o.id = due.id
RETURNING o.id, o.org_id, o.channel_id, c.kind AS channel_kind,
          coalesce(c.enabled, false) AS channel_enabled,
          c.target_masked AS channel_target_masked, o.alert_id, o.idempotency_key,
          o.payload::text AS payload, o.attempts AS attempt, o.created_at
"""
# Compare-and-set on the attempt number: only the holder of the current lease
# writes the outcome.
_FINISH = """
UPDATE notification_outbox
   SET state = $3,
       delivered_at = CASE WHEN $3 = 'DELIVERED' THEN $4::timestamptz ELSE delivered_at END,
       not_before = coalesce($5::timestamptz, not_before),
       last_error = $6::text,
       delivery_log = delivery_log || jsonb_build_array($7::text::jsonb)
 WHERE id = $1 AND state = 'PENDING' AND attempts = $2
"""
_GET = f"SELECT {_COLUMNS} FROM notification_outbox WHERE id = $1"
_GET_BY_KEY = f"SELECT {_COLUMNS} FROM notification_outbox WHERE idempotency_key = $1"
_LIST_FOR_ORG = (
    f"SELECT {_COLUMNS} FROM notification_outbox WHERE org_id = $1 ORDER BY created_at, id"
)
_PRUNE = "DELETE FROM notification_outbox WHERE state <> 'PENDING' AND created_at < $1"


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def enqueue(
    conn: asyncpg.Connection,
    *,
    org_id: UUID,
    alert_id: UUID | None,
    severity: str,
    title: str,
    body: str,
    idempotency_key: str,
    group_key: str | None = None,
    now: datetime | None = None,
) -> int:
    """Queue a message for the org: the in-app notification and one outbox row per enabled
    EMAIL/WEBHOOK/APPRISE channel whose min_severity is at most `severity`.

    Runs in the caller's transaction and never commits. Idempotent: the same
    `idempotency_key` again adds nothing. Returns the number of outbox rows created.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
    if not idempotency_key:
        raise ValueError("an idempotency key is required")
    created_at = now or datetime.now(UTC)
    payload = build_payload(
        org_id=org_id,
        alert_id=alert_id,
        severity=severity,
        title=title,
        body=body,
        idempotency_key=idempotency_key,
        created_at=created_at,
        group_key=group_key,
    )
    await conn.execute(_INSERT_NOTIFICATION, org_id, alert_id, title, body, idempotency_key)
    status: str = await conn.execute(
        _INSERT_OUTBOX,
        org_id,
        alert_id,
        idempotency_key,
        json.dumps(payload),
        now,
        list(DELIVERY_KINDS),
        list(SEVERITIES),
        severity,
    )
    return _count(status)


async def claim_due(
    conn: asyncpg.Connection, *, now: datetime, limit: int, lease: timedelta
) -> list[Claimed]:
    """Lease up to `limit` due PENDING messages (attempts + 1, not_before = now + lease).

    Concurrent claimers skip each other's rows. Commit before sending: the
    lease, not the open transaction, is what keeps other workers off.
    """
    rows = await conn.fetch(_CLAIM, now, limit, lease)
    return [Claimed.from_row(r) for r in rows]


async def finish(
    conn: asyncpg.Connection,
    message_id: UUID,
    attempt: int,
    *,
    outcome: str,
    at: datetime,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> bool:
    """Record how attempt `attempt` ended (DELIVERED, RETRY at `retry_at`, or FAILED) and log it.

    False when the lease was lost (another worker claimed the message since):
    its outcome, not this one, is the one that counts.
    """
    if outcome not in _STATE_AFTER:
        raise ValueError(f"unknown outcome {outcome!r}")
    if (outcome == RETRY) != (retry_at is not None):
        raise ValueError("retry_at is required for RETRY and only for it")
    entry = json.dumps(
        {
            "attempt": attempt,
            "at": at.astimezone(UTC).isoformat(),
            "outcome": outcome,
            "error": error,
        }
    )
    status: str = await conn.execute(
        _FINISH, message_id, attempt, _STATE_AFTER[outcome], at, retry_at, error, entry
    )
    return status == "UPDATE 1"


async def get(conn: asyncpg.Connection, message_id: UUID) -> OutboxMessage | None:
    row = await conn.fetchrow(_GET, message_id)
    return OutboxMessage.from_row(row) if row else None


async def get_by_key(conn: asyncpg.Connection, idempotency_key: str) -> OutboxMessage | None:
    """By the per-channel key (`channel_idempotency_key`)."""
    row = await conn.fetchrow(_GET_BY_KEY, idempotency_key)
    return OutboxMessage.from_row(row) if row else None


async def list_for_org(conn: asyncpg.Connection, org_id: UUID) -> list[OutboxMessage]:
    """Oldest first."""
    return [OutboxMessage.from_row(r) for r in await conn.fetch(_LIST_FOR_ORG, org_id)]


async def prune(conn: asyncpg.Connection, *, older_than: datetime) -> int:
    """Delete delivered and failed messages created before `older_than`; pending ones stay."""
    status: str = await conn.execute(_PRUNE, older_than)
    return _count(status)

"""The dispatcher: claim due outbox messages, send them, record each attempt.

Three short steps, none holding a transaction open across the network:

1. claim (one transaction): lease a small batch (`db.outbox.claim_due`) and read the
   channels' targets and secrets from the vault; commit;
2. send, concurrently (bounded), each send bounded in time;
3. record, one transaction per message: the attempt's outcome (delivered, retry with
   exponential backoff, failed) and the channel's health.

A worker that dies between 1 and 3 leaves its messages leased; when the lease runs out
another worker claims them again, so every message is delivered at least once, and
receivers drop the rare duplicate by its idempotency key. Nothing is lost when a channel
fails for good either: every message was also written as an in-app notification by
`db.outbox.enqueue`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import httpx
import structlog

from db import channels, notifications
from db import outbox as repo
from db.scope import as_service
from db.vault import Vault, VaultError
from workers.delivery.apprise_channel import send_apprise
from workers.delivery.email import send_email
from workers.delivery.messages import Message, channel_test_message
from workers.delivery.policy import FAILING_AFTER, Outcome, next_step, retry_delay, short
from workers.delivery.redaction import install_log_guards
from workers.delivery.webhook import send_webhook

log = structlog.get_logger(__name__)

# Longer than any one send may take (SEND_TIMEOUT_SECONDS) plus recording it.
LEASE = timedelta(minutes=2)
SEND_TIMEOUT_SECONDS = 45.0
BATCH_SIZE = 20
CONCURRENCY = 10
# One dispatcher run stops claiming after this long; the next tick picks up the rest.
RUN_BUDGET_SECONDS = 20.0

KIND_LABELS = {"EMAIL": "email", "WEBHOOK": "webhook", "APPRISE": "Apprise", "IN_APP": "in-app"}

_rng = random.SystemRandom()


@dataclass(frozen=True)
class Deliverer:
    """What sending needs: the worker's pool, vault and HTTP client, and the SMTP settings."""

    pool: asyncpg.Pool
    vault: Vault
    http: httpx.AsyncClient
    smtp_url: str | None = None
    smtp_sender: str = "Integration Health Monitor <monitor@localhost>"
    send_timeout: float = SEND_TIMEOUT_SECONDS
    jitter: Callable[[], float] = field(default=_rng.random)


@dataclass
class DispatchStats:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0

    def count(self, step: str) -> None:
        if step == repo.DELIVERED:
            self.delivered += 1
        elif step == repo.RETRY:
            self.retried += 1
        else:
            self.failed += 1


# -- sending ----------------------------------------------------------------------------


async def send(
    deliverer: Deliverer,
    kind: str,
    target: str,
    secret: str | None,
    message: Message,
) -> Outcome:
    """One attempt through one channel, bounded in time; never raises."""
    install_log_guards()
    try:
        async with asyncio.timeout(deliverer.send_timeout):
            if kind == "EMAIL":
                return await send_email(
                    message,
                    target=target,
                    smtp_url=deliverer.smtp_url,
                    sender=deliverer.smtp_sender,
                )
            if kind == "WEBHOOK":
                return await send_webhook(deliverer.http, message, url=target, secret=secret)
            if kind == "APPRISE":
                return await send_apprise(message, url=target)
            return Outcome.give_up(f"{kind} channels are not delivered from the outbox")
    except TimeoutError:
        return Outcome.retry(f"the delivery took longer than {deliverer.send_timeout:g} s")
    except Exception as exc:
        # Neither the exception's text nor its traceback: either may quote the target.
        log.error("notification_send_crashed", kind=kind, error=type(exc).__name__)
        return Outcome.retry(f"unexpected error while sending ({type(exc).__name__})")


async def _load_targets(
    conn: asyncpg.Connection, vault: Vault, claimed: list[repo.Claimed]
) -> dict[UUID, tuple[str, str | None] | str]:
    """Per channel: (target, secret), or why it could not be read."""
    found: dict[UUID, tuple[str, str | None] | str] = {}
    for item in claimed:
        cid = item.channel_id
        if cid is None or cid in found or item.channel_kind not in repo.DELIVERY_KINDS:
            continue
        try:
            found[cid] = await channels.load_secret_target(conn, vault, cid)
        except LookupError:
            found[cid] = "the channel has no stored target: add it again"
        except VaultError as exc:
            # Names the key id and the channel, never plaintext.
            found[cid] = short(str(exc))
    return found


# -- channel health ---------------------------------------------------------------------


def failing_title(channel: channels.Channel) -> str:
    label = KIND_LABELS.get(channel.kind, channel.kind.lower())
    return f"The {label} channel {channel.target_masked} keeps failing: check it in Settings"


def failing_body(error: str | None) -> str:
    return (
        f"The last {FAILING_AFTER} deliveries through this channel failed"
        + (f"; the latest: {error}." if error else ".")
        + " Until it works again, every notification still appears here in the app."
        " Check the channel's address and secret in Settings, then send a test message."
    )


async def record_channel_outcome(
    conn: asyncpg.Connection, channel_id: UUID, *, ok: bool, at: datetime, error: str | None
) -> channels.Channel | None:
    """Count the outcome on the channel; the failure that makes it FAILING_AFTER in a row
    tells the org in-app, once per failing streak (a success ends the streak)."""
    channel = await channels.record_delivery(conn, channel_id, ok=ok, at=at)
    # record_delivery serialises on the channel's row: exactly one failure sees the threshold.
    if channel is not None and not ok and channel.consecutive_failures == FAILING_AFTER:
        await notifications.create(
            conn,
            org_id=channel.org_id,
            alert_id=None,
            title=failing_title(channel),
            body=failing_body(error),
        )
        log.warning(
            "notification_channel_failing",
            channel_id=str(channel.id),
            org_id=str(channel.org_id),
            kind=channel.kind,
        )
    return channel


def is_failing(channel: channels.Channel) -> bool:
    return channel.consecutive_failures >= FAILING_AFTER


# -- the dispatcher ---------------------------------------------------------------------


async def _attempt(
    deliverer: Deliverer, item: repo.Claimed, target: tuple[str, str | None] | str | None
) -> tuple[Outcome, bool]:
    """The outcome, and whether it says anything about the channel's health."""
    if item.channel_kind is None:
        return Outcome.give_up("the channel was removed"), False
    if not item.channel_enabled:
        return Outcome.give_up("the channel was disabled before delivery"), False
    if item.channel_kind == "IN_APP":
        return Outcome.delivered(), False  # the in-app notification is the delivery
    if isinstance(target, str):
        return Outcome.retry(target), True
    if target is None:
        return Outcome.retry("the channel's target could not be read"), True
    url, secret = target
    message = Message(item.payload)
    return await send(deliverer, item.channel_kind, url, secret, message), True


async def _record(
    deliverer: Deliverer,
    item: repo.Claimed,
    outcome: Outcome,
    *,
    counts_for_channel: bool,
    at: datetime,
) -> str:
    step = next_step(outcome, item.attempt)
    retry_at = None
    if step == repo.RETRY:
        retry_at = at + retry_delay(
            item.attempt, jitter=deliverer.jitter(), retry_after=outcome.retry_after_seconds
        )
    error = short(outcome.error) if outcome.error else None
    async with as_service(deliverer.pool) as conn:
        current = await repo.finish(
            conn, item.id, item.attempt, outcome=step, at=at, error=error, retry_at=retry_at
        )
        if counts_for_channel and item.channel_id is not None:
            await record_channel_outcome(conn, item.channel_id, ok=outcome.ok, at=at, error=error)
    log.info(
        "notification_delivery",
        outbox_id=str(item.id),
        org_id=str(item.org_id),
        channel_id=str(item.channel_id),
        kind=item.channel_kind,
        attempt=item.attempt,
        outcome=step,
        error=error,
        retry_at=retry_at.isoformat() if retry_at else None,
        lease_lost=not current,
    )
    return step


async def dispatch_due(
    deliverer: Deliverer,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    concurrency: int = CONCURRENCY,
    budget_seconds: float = RUN_BUDGET_SECONDS,
) -> DispatchStats:
    """Deliver what is due, batch after batch, until nothing is due or the budget is spent.

    `now` pins the clock (tests); by default each step reads the real one.
    """

    def clock() -> datetime:
        return now or datetime.now(UTC)

    stats = DispatchStats()
    limit = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    while time.monotonic() - started < budget_seconds:
        async with as_service(deliverer.pool) as conn:
            claimed = await repo.claim_due(conn, now=clock(), limit=batch_size, lease=LEASE)
            targets = await _load_targets(conn, deliverer.vault, claimed)
        if not claimed:
            break
        stats.claimed += len(claimed)

        async def attempt(
            item: repo.Claimed, target: tuple[str, str | None] | str | None
        ) -> tuple[Outcome, bool]:
            async with limit:
                return await _attempt(deliverer, item, target)

        results = await asyncio.gather(
            *(
                attempt(item, targets.get(item.channel_id) if item.channel_id else None)
                for item in claimed
            )
        )
        for item, (outcome, counts) in zip(claimed, results, strict=True):
            step = await _record(deliverer, item, outcome, counts_for_channel=counts, at=clock())
            stats.count(step)
        if len(claimed) < batch_size:
            break
    return stats


async def send_test_message(
    deliverer: Deliverer, org_id: UUID, channel_id: UUID, *, now: datetime | None = None
) -> bool:
    """`testNotificationChannel`: a real message through the channel now, not through the
    outbox; the outcome counts on the channel like any delivery. True when delivered."""
    at = now or datetime.now(UTC)
    async with as_service(deliverer.pool) as conn:
        channel = await channels.get(conn, channel_id)
        if channel is None or channel.org_id != org_id:
            return False
        message = channel_test_message(org_id, channel_id, now=at)
        target: tuple[str, str | None] | None = None
        error = None
        if channel.kind == "IN_APP":
            await notifications.create(
                conn, org_id=org_id, alert_id=None, title=message.title, body=message.body
            )
        else:
            try:
                target = await channels.load_secret_target(conn, deliverer.vault, channel_id)
            except LookupError:
                error = "the channel has no stored target: add it again"
            except VaultError as exc:
                error = short(str(exc))
    if channel.kind == "IN_APP":
        outcome = Outcome.delivered()
    elif target is None:
        outcome = Outcome.retry(error or "the channel's target could not be read")
    else:
        outcome = await send(deliverer, channel.kind, target[0], target[1], message)
    finished = now or datetime.now(UTC)
    async with as_service(deliverer.pool) as conn:
        await record_channel_outcome(
            conn, channel_id, ok=outcome.ok, at=finished, error=outcome.error
        )
    log.info(
        "notification_channel_test",
        channel_id=str(channel_id),
        org_id=str(org_id),
        kind=channel.kind,
        delivered=outcome.ok,
        error=outcome.error,
    )
    return outcome.ok

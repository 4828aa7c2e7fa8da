"""Scheduling rules as pure functions of their inputs and `now` (no I/O).

Each integration keeps a fixed phase within its interval, derived from its id,
so 10,000 integrations on a 15-minute interval spread evenly over those 15
minutes instead of firing in the same second, and keep their place.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_BACKOFF_SECONDS = 4 * 3600
RATE_LIMITED_STREAK_FOR_PASSIVE = 3
PASSIVE_COOLDOWN = timedelta(hours=1)
DRIFT_ALERT_AFTER = timedelta(minutes=5)


def phase_seconds(integration_id: UUID, interval_seconds: int) -> float:
    """A stable offset in [0, interval) for this integration."""
    digest = hashlib.sha256(integration_id.bytes).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return fraction * interval_seconds


def effective_interval(
    base_seconds: int,
    floor_seconds: int,
    consecutive_failures: int,
    cap_seconds: int = MAX_BACKOFF_SECONDS,
) -> int:
    """The base interval (never below the type's floor), doubled for each consecutive
    failure after the first, capped; a success (0 failures) restores the base."""
    base = max(base_seconds, floor_seconds)
    if consecutive_failures <= 1:
        return base
    grown = base * (1 << min(consecutive_failures - 1, 30))
    return max(base, min(grown, max(cap_seconds, base)))


def next_slot(
    integration_id: UUID, interval_seconds: int, now: datetime, *, at_least: float | None = None
) -> datetime:
    """The first time on this integration's phase grid at least `at_least` seconds
    (default: half an interval) after `now`."""
    minimum = interval_seconds / 2 if at_least is None else at_least
    earliest = (now - EPOCH).total_seconds() + minimum
    phase = phase_seconds(integration_id, interval_seconds)
    cycles = -(-(earliest - phase) // interval_seconds)  # ceil
    return EPOCH + timedelta(seconds=cycles * interval_seconds + phase)


@dataclass(frozen=True)
class Due:
    """A claimed integration, as the scheduler decides about it."""

    integration_id: UUID
    interval_seconds: int
    floor_seconds: int
    consecutive_failures: int
    rate_limited_streak: int
    retry_after_seconds: float | None = None


@dataclass(frozen=True)
class Decision:
    check: bool
    next_check_at: datetime
    go_passive_until: datetime | None = None


def decide(due: Due, now: datetime) -> Decision:
    """Check now and when next, or switch to passive monitoring for a cool-down."""
    if due.rate_limited_streak >= RATE_LIMITED_STREAK_FOR_PASSIVE:
        until = now + PASSIVE_COOLDOWN
        return Decision(check=False, next_check_at=until, go_passive_until=until)
    interval = effective_interval(due.interval_seconds, due.floor_seconds, due.consecutive_failures)
    at_least = interval / 2
    if due.retry_after_seconds:
        at_least = max(at_least, due.retry_after_seconds)
    return Decision(
        check=True, next_check_at=next_slot(due.integration_id, interval, now, at_least=at_least)
    )


def drifted(scheduled_for: datetime, started_at: datetime) -> bool:
    return started_at - scheduled_for > DRIFT_ALERT_AFTER


def slot_key(integration_id: UUID, slot: datetime) -> str:
    """Idempotency key of one scheduled check: integration + scheduled slot."""
    return f"{integration_id}:{slot.astimezone(UTC).isoformat()}"

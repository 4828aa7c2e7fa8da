"""What a delivery attempt came to, and what follows from it: pure functions of their inputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

MAX_ATTEMPTS = 8
BASE_DELAY_SECONDS = 30.0
MAX_DELAY_SECONDS = 3600.0
JITTER_FRACTION = 0.1
# A channel failing this many times in a row is "failing": its org admins are told.
FAILING_AFTER = 3


@dataclass(frozen=True)
class Outcome:
    """How one send went. `error` is shown to org admins: short, and never a secret."""

    ok: bool
    error: str | None = None
    permanent: bool = False  # retrying cannot help (a 4xx, an unusable target)
    retry_after_seconds: float | None = None  # the receiver asked us to wait (Retry-After)

    @classmethod
    def delivered(cls) -> Outcome:
        return cls(ok=True)

    @classmethod
    def retry(cls, error: str, *, retry_after_seconds: float | None = None) -> Outcome:
        return cls(ok=False, error=error, retry_after_seconds=retry_after_seconds)

    @classmethod
    def give_up(cls, error: str) -> Outcome:
        return cls(ok=False, error=error, permanent=True)


def retry_delay(
    attempt: int, *, jitter: float = 0.0, retry_after: float | None = None
) -> timedelta:
    """The wait after failed attempt number `attempt` (1, 2, ...): 30 s, 1 min, 2 min, ...
    capped at 1 h, stretched by up to 10 % (`jitter` in [0, 1)) so that messages that failed
    together do not retry together; never shorter than what the receiver asked for."""
    delay = min(BASE_DELAY_SECONDS * 2 ** max(attempt - 1, 0), MAX_DELAY_SECONDS)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_DELAY_SECONDS))
    return timedelta(seconds=delay * (1 + JITTER_FRACTION * min(max(jitter, 0.0), 1.0)))


def next_step(outcome: Outcome, attempt: int, *, max_attempts: int = MAX_ATTEMPTS) -> str:
    """DELIVERED, RETRY or FAILED (the outbox's outcome names)."""
    if outcome.ok:
        return "DELIVERED"
    if outcome.permanent or attempt >= max_attempts:
        return "FAILED"
    return "RETRY"


def short(text: str, limit: int = 300) -> str:
    """One line, bounded: last_error is shown in a table cell."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"

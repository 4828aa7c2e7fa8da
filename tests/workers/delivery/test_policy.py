"""Backoff and the next step after an attempt: pure functions, tested as tables."""

from __future__ import annotations

from datetime import timedelta

import pytest

from workers.delivery.policy import MAX_ATTEMPTS, Outcome, next_step, retry_delay, short


@pytest.mark.parametrize(
    ("attempt", "jitter", "retry_after", "seconds"),
    [
        (1, 0.0, None, 30),
        (2, 0.0, None, 60),
        (3, 0.0, None, 120),
        (7, 0.0, None, 1920),
        (8, 0.0, None, 3600),
        (30, 0.0, None, 3600),
        (1, 0.5, None, 31.5),
        (1, 0.999, None, 32.997),
        (8, 0.999, None, 3959.64),
        (1, 0.0, 120, 120),
        (3, 0.0, 10, 120),
        (1, 0.0, 86_400, 3600),
    ],
)
def test_retry_delay_doubles_from_30_seconds_to_an_hour_with_up_to_10_percent_jitter(
    attempt: int, jitter: float, retry_after: float | None, seconds: float
) -> None:
    delay = retry_delay(attempt, jitter=jitter, retry_after=retry_after)

    assert delay == pytest.approx(timedelta(seconds=seconds), abs=timedelta(milliseconds=1))


@pytest.mark.parametrize(
    ("outcome", "attempt", "step"),
    [
        (Outcome.delivered(), 1, "DELIVERED"),
        (Outcome.delivered(), MAX_ATTEMPTS, "DELIVERED"),
        (Outcome.retry("the webhook answered 500"), 1, "RETRY"),
        (Outcome.retry("the webhook answered 500"), MAX_ATTEMPTS - 1, "RETRY"),
        (Outcome.retry("the webhook answered 500"), MAX_ATTEMPTS, "FAILED"),
        (Outcome.give_up("the webhook refused the message (404)"), 1, "FAILED"),
    ],
)
def test_next_step_retries_transient_failures_until_the_last_attempt(
    outcome: Outcome, attempt: int, step: str
) -> None:
    assert next_step(outcome, attempt) == step


def test_short_errors_are_one_bounded_line() -> None:
    assert short("a\n  b\tc") == "a b c"
    assert len(short("x" * 1000)) == 300

"""The pure scheduling rules, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from workers.scheduling import (
    MAX_BACKOFF_SECONDS,
    PASSIVE_COOLDOWN,
    Due,
    decide,
    drifted,
    effective_interval,
    next_slot,
    phase_seconds,
    slot_key,
)

NOW = datetime(2026, 11, 22, 12, 0, 7, tzinfo=UTC)
ID = UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("base", "floor", "failures", "expected"),
    [
        (300, 300, 0, 300),
        (300, 300, 1, 300),
        (300, 300, 2, 600),
        (300, 300, 3, 1200),
        (300, 300, 6, 9600),
        (300, 300, 7, MAX_BACKOFF_SECONDS),
        (300, 300, 1000, MAX_BACKOFF_SECONDS),
        (60, 900, 0, 900),  # never below the type's floor
        (900, 900, 2, 1800),
        (86400, 300, 5, 86400),  # a long base interval is never shortened by the cap
    ],
)
def test_backoff_doubles_per_failure_is_capped_and_respects_the_floor(
    base: int, floor: int, failures: int, expected: int
) -> None:
    assert effective_interval(base, floor, failures) == expected


@pytest.mark.parametrize("interval", [300, 900, 3600])
def test_next_slot_lies_on_the_integrations_phase_grid(interval: int) -> None:
    slot = next_slot(ID, interval, NOW)

    offset = (slot - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() % interval
    assert offset == pytest.approx(phase_seconds(ID, interval), abs=1e-3)
    assert interval / 2 <= (slot - NOW).total_seconds() < interval * 1.5
    assert next_slot(ID, interval, slot) == slot + timedelta(seconds=interval)


def test_phases_spread_many_integrations_over_the_interval() -> None:
    interval = 900
    phases = [phase_seconds(uuid4(), interval) for _ in range(10_000)]

    per_minute = [0] * 15
    for phase in phases:
        assert 0 <= phase < interval
        per_minute[int(phase // 60)] += 1
    # Uniform would be 666.7 per minute; nothing close to "all in one second".
    assert max(per_minute) < 800
    assert min(per_minute) > 540


@pytest.mark.parametrize(
    ("failures", "streak", "retry_after", "passive", "min_wait"),
    [
        (0, 0, None, False, 150),
        (3, 0, None, False, 600),  # backoff: 4 x 300, at least half of it
        (0, 2, None, False, 150),
        (0, 3, None, True, 3600),  # rate limited three times in a row: passive
        (0, 1, 1800.0, False, 1800),  # Retry-After is honoured
    ],
)
def test_decide_checks_backs_off_or_goes_passive(
    failures: int, streak: int, retry_after: float | None, passive: bool, min_wait: float
) -> None:
    decision = decide(Due(ID, 300, 300, failures, streak, retry_after), NOW)

    assert decision.check is not passive
    assert (decision.next_check_at - NOW).total_seconds() >= min_wait
    if passive:
        assert decision.go_passive_until == NOW + PASSIVE_COOLDOWN


@pytest.mark.parametrize(
    ("late_by", "expected"),
    [(timedelta(0), False), (timedelta(minutes=5), False), (timedelta(minutes=5, seconds=1), True)],
)
def test_drift_counts_only_beyond_five_minutes(late_by: timedelta, expected: bool) -> None:
    assert drifted(NOW, NOW + late_by) is expected


def test_the_idempotency_key_is_integration_and_slot() -> None:
    assert slot_key(ID, NOW) == f"{ID}:2026-11-22T12:00:07+00:00"
    assert slot_key(ID, NOW.astimezone()) == slot_key(ID, NOW)

"""Google Calendar: one event of the primary calendar; the access role must allow writing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workers.checks.fakes import (
    GOOGLE_CREDENTIALS,
    GOOGLE_SECRETS,
    NEW_ACCESS_TOKEN,
    ORG_ID,
    TRANSPORT_FAILURES,
    Handler,
    Harness,
    accepting,
    answer,
    assert_failed,
    assert_no_secrets,
    google,
    google_error,
    slowly,
)
from workers.checks.config import GoogleCalendarConfig, parse_config
from workers.checks.google_calendar import GoogleCalendarCheck
from workers.checks.result import ErrorCategory, HealthResult, RecoveryAction, Status

STORED = GOOGLE_CREDENTIALS["accessToken"]
EVENTS_URL = "https://www.googleapis.com/calendar/v3/calendars/primary/events?maxResults=1"


def events(access_role: Any = "owner") -> dict[str, Any]:
    return {"kind": "calendar#events", "accessRole": access_role, "items": []}


async def check(harness: Harness, config: GoogleCalendarConfig | None = None) -> HealthResult:
    return await GoogleCalendarCheck(harness.ctx).check(ORG_ID, config or GoogleCalendarConfig())


@pytest.fixture(autouse=True)
def stored_credentials(harness: Harness) -> None:
    harness.vault.put("google_calendar", GOOGLE_CREDENTIALS)


# -- access role --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "require_write", "status"),
    [
        ("owner", True, Status.HEALTHY),
        ("writer", True, Status.HEALTHY),
        ("reader", True, Status.DEGRADED),
        ("freeBusyReader", True, Status.DEGRADED),
        ("none", True, Status.DEGRADED),
        ("reader", False, Status.HEALTHY),
        ("freeBusyReader", False, Status.HEALTHY),
        ("none", False, Status.DEGRADED),
    ],
)
async def test_access_role_decides_health(
    harness: Harness, role: str, require_write: bool, status: Status
) -> None:
    harness.serve(google(accepting(STORED, answer(200, events(role)))))

    result = await check(harness, GoogleCalendarConfig(require_write=require_write))

    assert result.status is status
    if status is Status.DEGRADED:
        assert_failed(result, status, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)


async def test_owner_access_is_healthy(harness: Harness) -> None:
    harness.serve(google(accepting(STORED, answer(200, events("owner")))))

    result = await check(harness)

    assert result.status is Status.HEALTHY
    [request] = harness.requests
    assert (request.method, str(request.url)) == ("GET", EVENTS_URL)
    assert request.headers["authorization"] == f"Bearer {STORED}"


async def test_read_only_access_names_the_missing_write_permission(harness: Harness) -> None:
    harness.serve(google(accepting(STORED, answer(200, events("reader")))))

    result = await check(harness)

    assert_failed(result, Status.DEGRADED, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)
    assert "write access" in result.error.message  # type: ignore[union-attr]


@pytest.mark.parametrize("role", [None, 7, "superuser"], ids=["missing", "number", "unknown"])
async def test_answer_without_a_known_access_role_is_a_provider_error(
    harness: Harness, role: Any
) -> None:
    harness.serve(google(accepting(STORED, answer(200, events(role)))))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR)


# -- token refresh and credentials --------------------------------------------------


async def test_expired_token_is_refreshed_saved_and_the_call_retried(harness: Harness) -> None:
    harness.serve(google(accepting(NEW_ACCESS_TOKEN, answer(200, events()))))

    result = await check(harness)

    assert result.status is Status.HEALTHY
    assert len(harness.requests_to("/token")) == 1
    assert harness.vault.saved == [
        (ORG_ID, "google_calendar", {**GOOGLE_CREDENTIALS, "accessToken": NEW_ACCESS_TOKEN})
    ]


async def test_revoked_refresh_token_asks_to_reconnect(harness: Harness) -> None:
    harness.serve(google(answer(401, {}), answer(400, {"error": "invalid_grant"})))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)
    assert "Reconnect Google Calendar" in result.error.guidance  # type: ignore[union-attr]
    assert_no_secrets(result, *GOOGLE_SECRETS)


async def test_second_401_after_refresh_asks_to_reconnect(harness: Harness) -> None:
    harness.serve(google(answer(401, {})))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)
    assert len(harness.requests_to("/token")) == 1


async def test_missing_credentials_is_a_configuration_error(harness: Harness) -> None:
    harness.vault.stored.clear()

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.UPDATE_CREDENTIALS
    )


async def test_missing_calendar_scope_is_degraded(harness: Harness) -> None:
    body = google_error(
        403, "Request had insufficient authentication scopes.", "insufficientPermissions"
    )
    harness.serve(google(answer(403, body)))

    result = await check(harness)

    assert_failed(result, Status.DEGRADED, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)
    assert "Calendar scope" in result.error.message  # type: ignore[union-attr]


async def test_other_403_marks_integration_unreachable(harness: Harness) -> None:
    harness.serve(google(answer(403, google_error(403, "The caller does not have permission"))))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)


# -- limits, provider errors, transport ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"), [(429, "rateLimitExceeded"), (403, "quotaExceeded")], ids=["429", "403"]
)
async def test_rate_limit_is_degraded_with_retry_after(
    harness: Harness, status: int, reason: str
) -> None:
    body = google_error(status, "Calendar usage limits exceeded.", reason)
    harness.serve(google(answer(status, body, **{"Retry-After": "60"})))

    result = await check(harness)

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.RATE_LIMITED, RecoveryAction.WAIT_AND_RETRY
    )
    assert result.error is not None and result.error.retry_after_seconds == 60.0


async def test_server_error_is_unreachable_and_transient(harness: Harness) -> None:
    harness.serve(google(answer(503, b"Service Unavailable")))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR, transient=True)


async def test_malformed_body_is_a_provider_error(harness: Harness) -> None:
    harness.serve(google(accepting(STORED, answer(200, b"<html>calendar</html>"))))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR)


@pytest.mark.parametrize(("fail", "category", "mentions"), TRANSPORT_FAILURES)
async def test_transport_failure_is_unreachable_and_transient(
    harness: Harness, fail: Handler, category: ErrorCategory, mentions: str
) -> None:
    harness.serve(fail)

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, category, RecoveryAction.WAIT_AND_RETRY, transient=True
    )
    assert mentions in result.error.message  # type: ignore[union-attr]
    assert_no_secrets(result, *GOOGLE_SECRETS)


async def test_slow_answer_is_degraded(harness: Harness) -> None:
    harness.serve(google(slowly(accepting(STORED, answer(200, events())))))

    result = await check(harness, GoogleCalendarConfig(degraded_latency_ms=5))

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.PROVIDER_ERROR, RecoveryAction.WAIT_AND_RETRY
    )


async def test_base_url_override_is_used(harness: Harness) -> None:
    harness.serve(google(accepting(STORED, answer(200, events()))))
    config = parse_config("google_calendar", {"baseUrl": "https://calendar.sandbox.test"})

    result = await check(harness, config)  # type: ignore[arg-type]

    assert result.status is Status.HEALTHY
    assert str(harness.requests[0].url) == (
        "https://calendar.sandbox.test/calendar/v3/calendars/primary/events?maxResults=1"
    )

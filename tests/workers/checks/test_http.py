"""The generic HTTP check: an expected status in time is healthy, nothing else is."""

from __future__ import annotations

import base64

import pytest

from tests.workers.checks.fakes import (
    ORG_ID,
    TRANSPORT_FAILURES,
    Handler,
    Harness,
    answer,
    assert_failed,
    assert_no_secrets,
    slowly,
)
from workers.checks.config import HttpConfig, parse_config
from workers.checks.http import HttpCheck
from workers.checks.result import ErrorCategory, HealthResult, RecoveryAction, Status

URL = "https://status.example.test/health"
TOKEN = "http-bearer-secret"


async def check(harness: Harness, config: HttpConfig | None = None) -> HealthResult:
    return await HttpCheck(harness.ctx).check(ORG_ID, config or HttpConfig(url=URL))


async def test_public_endpoint_needs_no_credentials(harness: Harness) -> None:
    harness.serve(answer(200, b"<html>fine</html>"))

    result = await check(harness)

    assert result.status is Status.HEALTHY
    [request] = harness.requests
    assert (request.method, str(request.url)) == ("GET", URL)
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("credentials", "authorization"),
    [
        ({"bearerToken": TOKEN}, f"Bearer {TOKEN}"),
        (
            {"username": "monitor", "password": "pw-secret"},
            "Basic " + base64.b64encode(b"monitor:pw-secret").decode(),
        ),
    ],
    ids=["bearer", "basic"],
)
async def test_stored_credentials_are_sent(
    harness: Harness, credentials: dict[str, str], authorization: str
) -> None:
    harness.vault.put("http", credentials)
    harness.serve(answer(204))

    result = await check(harness)

    assert result.status is Status.HEALTHY
    assert harness.requests[0].headers["authorization"] == authorization


async def test_head_method_and_expected_status_are_honoured(harness: Harness) -> None:
    harness.serve(answer(401))
    config = HttpConfig(url=URL, method="HEAD", expected_status=[401])

    result = await check(harness, config)

    assert result.status is Status.HEALTHY
    assert harness.requests[0].method == "HEAD"


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_error_marks_integration_unreachable(harness: Harness, status: int) -> None:
    harness.vault.put("http", {"bearerToken": TOKEN})
    harness.serve(answer(status, {"detail": f"token {TOKEN} is wrong"}))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS)
    assert_no_secrets(result, TOKEN)


async def test_unreadable_credentials_are_a_configuration_error(harness: Harness) -> None:
    harness.vault.unreadable = True

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.UPDATE_CREDENTIALS
    )
    assert harness.requests == []


async def test_status_outside_the_expected_list_is_a_permanent_provider_error(
    harness: Harness,
) -> None:
    harness.serve(answer(204))

    result = await check(harness, HttpConfig(url=URL, expected_status=[200]))

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR, transient=False)
    assert "204" in result.error.message  # type: ignore[union-attr]


async def test_rate_limit_is_degraded_with_retry_after(harness: Harness) -> None:
    harness.serve(answer(429, **{"Retry-After": "120"}))

    result = await check(harness)

    assert_failed(result, Status.DEGRADED, ErrorCategory.RATE_LIMITED)
    assert result.error is not None and result.error.retry_after_seconds == 120.0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_is_unreachable_and_transient(harness: Harness, status: int) -> None:
    harness.serve(answer(status, b"<html>stack trace</html>"))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR, transient=True)
    assert "stack trace" not in result.error.message  # type: ignore[union-attr]


async def test_not_found_points_at_the_address(harness: Harness) -> None:
    harness.serve(answer(404))

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.FIX_CONFIGURATION
    )


@pytest.mark.parametrize(("fail", "category", "mentions"), TRANSPORT_FAILURES)
async def test_transport_failure_is_unreachable_and_transient(
    harness: Harness, fail: Handler, category: ErrorCategory, mentions: str
) -> None:
    harness.vault.put("http", {"bearerToken": TOKEN})
    harness.serve(fail)

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, category, RecoveryAction.WAIT_AND_RETRY, transient=True
    )
    assert mentions in result.error.message  # type: ignore[union-attr]
    assert_no_secrets(result, TOKEN, "status.example.test")


async def test_slow_answer_is_degraded(harness: Harness) -> None:
    harness.serve(slowly(answer(200)))

    result = await check(harness, HttpConfig(url=URL, degraded_latency_ms=5))

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.PROVIDER_ERROR, RecoveryAction.WAIT_AND_RETRY
    )


async def test_relative_url_is_resolved_against_base_url(harness: Harness) -> None:
    harness.serve(answer(200))
    config = parse_config("http", {"baseUrl": "https://sandbox.example.test/", "url": "/up"})

    result = await check(harness, config)  # type: ignore[arg-type]

    assert result.status is Status.HEALTHY
    assert str(harness.requests[0].url) == "https://sandbox.example.test/up"

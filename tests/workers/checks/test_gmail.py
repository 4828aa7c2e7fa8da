"""Gmail: one message listed with the stored token; a refused token is refreshed once."""

from __future__ import annotations

from typing import Any

import httpx
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
    form,
    google,
    google_error,
    grant,
    slowly,
)
from workers.checks.config import GmailConfig, parse_config
from workers.checks.gmail import GmailCheck
from workers.checks.result import ErrorCategory, HealthResult, RecoveryAction, Status

STORED = GOOGLE_CREDENTIALS["accessToken"]
MESSAGES_URL = "https://gmail.googleapis.com/gmail/v1/users/me/messages?maxResults=1"
MAILBOX = {"messages": [{"id": "18c", "threadId": "18c"}], "resultSizeEstimate": 1}
INSUFFICIENT_SCOPE = google_error(
    403,
    "Request had insufficient authentication scopes.",
    "insufficientPermissions",
    grpc_status="PERMISSION_DENIED",
)


async def check(harness: Harness, config: GmailConfig | None = None) -> HealthResult:
    return await GmailCheck(harness.ctx).check(ORG_ID, config or GmailConfig())


@pytest.fixture(autouse=True)
def stored_credentials(harness: Harness) -> None:
    harness.vault.put("gmail", GOOGLE_CREDENTIALS)


def token_requests(harness: Harness) -> list[httpx.Request]:
    return harness.requests_to("/token")


# -- healthy and token refresh ----------------------------------------------------


async def test_valid_token_lists_one_message_and_is_healthy(harness: Harness) -> None:
    harness.serve(google(accepting(STORED, answer(200, MAILBOX))))

    result = await check(harness)

    assert result.status is Status.HEALTHY
    [request] = harness.requests
    assert (request.method, str(request.url)) == ("GET", MESSAGES_URL)
    assert request.headers["authorization"] == f"Bearer {STORED}"
    assert harness.vault.saved == []


async def test_empty_mailbox_is_healthy(harness: Harness) -> None:
    harness.serve(google(accepting(STORED, answer(200, {"resultSizeEstimate": 0}))))

    result = await check(harness)

    assert result.status is Status.HEALTHY


async def test_expired_token_is_refreshed_saved_and_the_call_retried(harness: Harness) -> None:
    harness.serve(google(accepting(NEW_ACCESS_TOKEN, answer(200, MAILBOX))))

    result = await check(harness)

    assert result.status is Status.HEALTHY
    [token_request] = token_requests(harness)
    assert str(token_request.url) == "https://oauth2.googleapis.com/token"
    assert form(token_request) == {
        "grant_type": "refresh_token",
        "refresh_token": GOOGLE_CREDENTIALS["refreshToken"],
        "client_id": GOOGLE_CREDENTIALS["clientId"],
        "client_secret": GOOGLE_CREDENTIALS["clientSecret"],
    }
    assert harness.vault.saved == [
        (ORG_ID, "gmail", {**GOOGLE_CREDENTIALS, "accessToken": NEW_ACCESS_TOKEN})
    ]
    api_calls = harness.requests_to("/messages")
    assert [r.headers["authorization"] for r in api_calls] == [
        f"Bearer {STORED}",
        f"Bearer {NEW_ACCESS_TOKEN}",
    ]


async def test_missing_access_token_is_refreshed_before_the_first_call(harness: Harness) -> None:
    without_access = {k: v for k, v in GOOGLE_CREDENTIALS.items() if k != "accessToken"}
    harness.vault.put("gmail", without_access)
    harness.serve(google(accepting(NEW_ACCESS_TOKEN, answer(200, MAILBOX))))

    result = await check(harness)

    assert result.status is Status.HEALTHY
    assert len(token_requests(harness)) == 1
    assert len(harness.requests_to("/messages")) == 1
    assert harness.vault.saved[0][2] == {**without_access, "accessToken": NEW_ACCESS_TOKEN}


async def test_rotated_refresh_token_is_saved_too(harness: Harness) -> None:
    api = accepting(NEW_ACCESS_TOKEN, answer(200, MAILBOX))
    harness.serve(google(api, grant(refresh_token="1//rotated-refresh")))

    await check(harness)

    saved = harness.vault.stored[(ORG_ID, "gmail")]
    assert saved["refreshToken"] == "1//rotated-refresh"
    assert saved["accessToken"] == NEW_ACCESS_TOKEN


# -- credentials rejected ---------------------------------------------------------


async def test_revoked_refresh_token_asks_to_reconnect(harness: Harness) -> None:
    refused = answer(400, {"error": "invalid_grant", "error_description": "Token has been expired"})
    harness.serve(google(accepting(NEW_ACCESS_TOKEN, answer(200, MAILBOX)), refused))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)
    assert "invalid_grant" in result.error.message  # type: ignore[union-attr]
    assert "Reconnect Gmail" in result.error.guidance  # type: ignore[union-attr]
    assert_no_secrets(result, *GOOGLE_SECRETS)
    assert harness.vault.saved == []


@pytest.mark.parametrize("code", ["invalid_client", "unauthorized_client"])
async def test_wrong_oauth_client_asks_to_update_its_id_or_secret(
    harness: Harness, code: str
) -> None:
    harness.serve(google(answer(401, {}), answer(401, {"error": code})))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS)
    assert "client ID or secret" in result.error.guidance  # type: ignore[union-attr]
    assert_no_secrets(result, *GOOGLE_SECRETS)


async def test_token_endpoint_refusal_without_a_code_is_an_auth_error(harness: Harness) -> None:
    harness.serve(google(answer(401, {}), answer(400, b"<html>Bad Request</html>")))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)


async def test_second_401_after_refresh_asks_to_reconnect(harness: Harness) -> None:
    harness.serve(google(answer(401, {"error": {"code": 401}})))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)
    assert len(token_requests(harness)) == 1
    assert len(harness.requests_to("/messages")) == 2
    assert_no_secrets(result, *GOOGLE_SECRETS)


async def test_refused_token_without_refresh_token_asks_to_reconnect(harness: Harness) -> None:
    harness.vault.put("gmail", {"accessToken": STORED})
    harness.serve(google(answer(401, {})))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)
    assert token_requests(harness) == []


async def test_missing_credentials_is_a_configuration_error(harness: Harness) -> None:
    harness.vault.stored.clear()

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.UPDATE_CREDENTIALS
    )
    assert harness.requests == []


# -- permissions and limits -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (INSUFFICIENT_SCOPE, {}),
        (
            {
                "error": {
                    "code": 403,
                    "message": "Permission denied.",
                    "status": "PERMISSION_DENIED",
                    "details": [{"reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}],
                }
            },
            {},
        ),
        ({"error": {"code": 403, "message": "Insufficient scopes for this call."}}, {}),
        ({}, {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="gmail.readonly"'}),
    ],
    ids=["errors-reason", "error-info", "message", "www-authenticate"],
)
async def test_missing_scope_is_degraded(
    harness: Harness, body: dict[str, Any], headers: dict[str, str]
) -> None:
    harness.serve(google(answer(403, body, **headers)))

    result = await check(harness)

    assert_failed(result, Status.DEGRADED, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)
    assert "lacks a permission" in result.error.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body",
    [
        google_error(403, "Delegation denied for someone@example.com", "forbidden"),
        {"error": "access_denied"},
        b"<html>Forbidden</html>",
    ],
    ids=["google-forbidden", "string-error", "html"],
)
async def test_other_403_marks_integration_unreachable(harness: Harness, body: Any) -> None:
    harness.serve(google(answer(403, body)))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.REAUTHENTICATE)
    assert "someone@example.com" not in result.error.message  # type: ignore[union-attr]


async def test_disabled_api_is_a_configuration_error(harness: Harness) -> None:
    body = google_error(403, "Gmail API has not been used in project 42", "accessNotConfigured")
    harness.serve(google(answer(403, body)))

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.FIX_CONFIGURATION
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, google_error(429, "Too many requests", "rateLimitExceeded", "RESOURCE_EXHAUSTED")),
        (403, google_error(403, "Rate Limit Exceeded", "rateLimitExceeded")),
        (403, google_error(403, "User Rate Limit Exceeded", "userRateLimitExceeded")),
    ],
    ids=["429", "403-rateLimitExceeded", "403-userRateLimitExceeded"],
)
async def test_rate_limit_is_degraded_with_retry_after(
    harness: Harness, status: int, body: dict[str, Any]
) -> None:
    harness.serve(google(answer(status, body, **{"Retry-After": "45"})))

    result = await check(harness)

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.RATE_LIMITED, RecoveryAction.WAIT_AND_RETRY
    )
    assert result.error is not None and result.error.retry_after_seconds == 45.0


async def test_rate_limited_token_endpoint_is_degraded(harness: Harness) -> None:
    harness.serve(google(answer(401, {}), answer(429, {}, **{"Retry-After": "5"})))

    result = await check(harness)

    assert_failed(result, Status.DEGRADED, ErrorCategory.RATE_LIMITED)


# -- provider errors and transport ------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
async def test_server_error_is_unreachable_and_transient(harness: Harness, status: int) -> None:
    body = google_error(status, "Backend Error", "backendError", "UNAVAILABLE")
    harness.serve(google(answer(status, body)))

    result = await check(harness)

    assert_failed(
        result,
        Status.UNREACHABLE,
        ErrorCategory.PROVIDER_ERROR,
        RecoveryAction.CHECK_PROVIDER_STATUS,
        transient=True,
    )


async def test_token_endpoint_server_error_is_unreachable_and_transient(harness: Harness) -> None:
    harness.serve(google(answer(401, {}), answer(502, b"Bad Gateway")))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR, transient=True)


@pytest.mark.parametrize(
    "token_answer",
    [answer(200, {"token_type": "Bearer"}), answer(200, b"<html>ok</html>")],
    ids=["no-access-token", "not-json"],
)
async def test_malformed_token_answer_is_a_provider_error(
    harness: Harness, token_answer: Handler
) -> None:
    harness.serve(google(answer(401, {}), token_answer))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR)
    assert harness.vault.saved == []


@pytest.mark.parametrize("body", [b"<html>Gmail</html>", b"[]"], ids=["html", "array"])
async def test_malformed_body_is_a_provider_error(harness: Harness, body: bytes) -> None:
    harness.serve(google(accepting(STORED, answer(200, body))))

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
    harness.serve(google(slowly(accepting(STORED, answer(200, MAILBOX)))))

    result = await check(harness, GmailConfig(degraded_latency_ms=5))

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.PROVIDER_ERROR, RecoveryAction.WAIT_AND_RETRY
    )


async def test_base_url_and_token_url_overrides_are_used(harness: Harness) -> None:
    harness.serve(google(accepting(NEW_ACCESS_TOKEN, answer(200, MAILBOX))))
    config = parse_config(
        "gmail",
        {"baseUrl": "https://gmail.sandbox.test", "tokenUrl": "https://auth.sandbox.test/token"},
    )

    result = await check(harness, config)  # type: ignore[arg-type]

    assert result.status is Status.HEALTHY
    assert [str(r.url) for r in harness.requests] == [
        "https://gmail.sandbox.test/gmail/v1/users/me/messages?maxResults=1",
        "https://auth.sandbox.test/token",
        "https://gmail.sandbox.test/gmail/v1/users/me/messages?maxResults=1",
    ]

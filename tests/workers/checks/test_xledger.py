"""Xledger: `query { __typename }` over GraphQL with `Authorization: token …`."""

from __future__ import annotations

import json
from typing import Any

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
from workers.checks.config import XledgerConfig, parse_config
from workers.checks.result import ErrorCategory, HealthResult, RecoveryAction, Status
from workers.checks.xledger import XledgerCheck

API_TOKEN = "xledger-api-token-secret"
TYPENAME = {"data": {"__typename": "Query"}}
KEY_REJECTED = "Xledger rejected the API key: check the credentials"


def graphql_errors(*messages: str, **extensions: str) -> dict[str, Any]:
    errors = [{"message": m, "extensions": dict(extensions)} for m in messages]
    return {"data": None, "errors": errors}


async def check(harness: Harness, config: XledgerConfig | None = None) -> HealthResult:
    return await XledgerCheck(harness.ctx).check(ORG_ID, config or XledgerConfig())


@pytest.fixture(autouse=True)
def stored_token(harness: Harness) -> None:
    harness.vault.put("xledger", {"apiToken": API_TOKEN})


async def test_valid_token_answers_the_query_and_is_healthy(harness: Harness) -> None:
    harness.serve(answer(200, TYPENAME))

    result = await check(harness)

    assert result.status is Status.HEALTHY
    [request] = harness.requests
    assert (request.method, str(request.url)) == ("POST", "https://www.xledger.net/graphql")
    assert request.headers["authorization"] == f"token {API_TOKEN}"
    assert json.loads(request.content) == {"query": "query { __typename }"}


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_error_marks_integration_unreachable(harness: Harness, status: int) -> None:
    harness.serve(answer(status, {"message": f"bad token {API_TOKEN}"}))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS)
    assert result.error is not None and result.error.guidance.startswith(KEY_REJECTED)
    assert_no_secrets(result, API_TOKEN)


@pytest.mark.parametrize(
    "body",
    [
        graphql_errors("Unauthorized"),
        graphql_errors("Invalid API token"),
        graphql_errors("The token has expired"),
        graphql_errors("Something", code="UNAUTHENTICATED"),
    ],
    ids=["unauthorized", "invalid-token", "expired", "extensions-code"],
)
async def test_graphql_auth_error_marks_integration_unreachable(
    harness: Harness, body: dict[str, Any]
) -> None:
    harness.serve(answer(200, body))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS)
    assert result.error is not None and result.error.guidance.startswith(KEY_REJECTED)


@pytest.mark.parametrize(
    "body",
    [graphql_errors("Internal server error: ref 8f3a"), {"errors": "boom"}],
    ids=["graphql-error", "errors-not-a-list"],
)
async def test_other_graphql_error_is_a_provider_error(
    harness: Harness, body: dict[str, Any]
) -> None:
    harness.serve(answer(200, body))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR, transient=True)
    assert "8f3a" not in result.error.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "credentials", [None, {"apiToken": ""}], ids=["none-stored", "empty-token"]
)
async def test_missing_credentials_is_a_configuration_error(
    harness: Harness, credentials: dict[str, str] | None
) -> None:
    harness.vault.stored.clear()
    if credentials is not None:
        harness.vault.put("xledger", credentials)

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.UPDATE_CREDENTIALS
    )
    assert harness.requests == []


@pytest.mark.parametrize(
    ("handler", "seconds"),
    [
        (answer(429, {}, **{"Retry-After": "900"}), 900.0),
        (answer(200, graphql_errors("Rate limit exceeded, try again later")), None),
    ],
    ids=["http-429", "graphql-throttled"],
)
async def test_rate_limit_is_degraded(
    harness: Harness, handler: Handler, seconds: float | None
) -> None:
    harness.serve(handler)

    result = await check(harness)

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.RATE_LIMITED, RecoveryAction.WAIT_AND_RETRY
    )
    assert result.error is not None and result.error.retry_after_seconds == seconds


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_is_unreachable_and_transient(harness: Harness, status: int) -> None:
    harness.serve(answer(status, b"<html>Server Error</html>"))

    result = await check(harness)

    assert_failed(
        result,
        Status.UNREACHABLE,
        ErrorCategory.PROVIDER_ERROR,
        RecoveryAction.CHECK_PROVIDER_STATUS,
        transient=True,
    )


@pytest.mark.parametrize(
    "body",
    [b"<html>maintenance</html>", {"data": None}, {"data": "Query"}],
    ids=["html", "null-data", "data-not-an-object"],
)
async def test_malformed_body_is_a_provider_error(harness: Harness, body: Any) -> None:
    harness.serve(answer(200, body))

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
    assert_no_secrets(result, API_TOKEN)


async def test_slow_answer_is_degraded(harness: Harness) -> None:
    harness.serve(slowly(answer(200, TYPENAME)))

    result = await check(harness, XledgerConfig(degraded_latency_ms=5))

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.PROVIDER_ERROR, RecoveryAction.WAIT_AND_RETRY
    )


async def test_base_url_override_is_used(harness: Harness) -> None:
    harness.serve(answer(200, TYPENAME))
    config = parse_config("xledger", {"baseUrl": "https://demo.xledger.test"})

    result = await check(harness, config)  # type: ignore[arg-type]

    assert result.status is Status.HEALTHY
    assert str(harness.requests[0].url) == "https://demo.xledger.test/graphql"

"""Slack: auth.test with the bot token; Slack's `ok: false` codes and scopes decide."""

from __future__ import annotations

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
from workers.checks.config import SlackConfig, parse_config
from workers.checks.result import ErrorCategory, HealthResult, RecoveryAction, Status
from workers.checks.slack import SlackCheck

BOT_TOKEN = "xoxb-slack-secret-token"
SCOPES = {"X-OAuth-Scopes": "chat:write, channels:read"}
OK = {"ok": True, "team": "Acme", "user": "monitor"}


async def check(harness: Harness, config: SlackConfig | None = None) -> HealthResult:
    return await SlackCheck(harness.ctx).check(ORG_ID, config or SlackConfig())


@pytest.fixture(autouse=True)
def stored_token(harness: Harness) -> None:
    harness.vault.put("slack", {"botToken": BOT_TOKEN})


async def test_valid_token_with_scopes_is_healthy(harness: Harness) -> None:
    harness.serve(answer(200, OK, **SCOPES))

    result = await check(harness)

    assert result.status is Status.HEALTHY
    [request] = harness.requests
    assert (request.method, str(request.url)) == ("POST", "https://slack.com/api/auth.test")
    assert request.headers["authorization"] == f"Bearer {BOT_TOKEN}"


@pytest.mark.parametrize("code", ["invalid_auth", "token_revoked", "account_inactive"])
async def test_auth_error_marks_integration_unreachable(harness: Harness, code: str) -> None:
    harness.serve(answer(200, {"ok": False, "error": code}))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS)
    assert code in result.error.message  # type: ignore[union-attr]
    assert_no_secrets(result, BOT_TOKEN)


async def test_missing_credentials_is_a_configuration_error(harness: Harness) -> None:
    harness.vault.stored.clear()

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.UPDATE_CREDENTIALS
    )
    assert harness.requests == []


@pytest.mark.parametrize("granted", ["channels:read", ""], ids=["other-scope", "no-header"])
async def test_missing_scope_is_degraded(harness: Harness, granted: str) -> None:
    headers = {"X-OAuth-Scopes": granted} if granted else {}
    harness.serve(answer(200, OK, **headers))

    result = await check(harness)

    assert_failed(result, Status.DEGRADED, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS)
    assert "chat:write" in result.error.message  # type: ignore[union-attr]


async def test_required_scopes_come_from_config(harness: Harness) -> None:
    harness.serve(answer(200, OK, **SCOPES))

    result = await check(harness, SlackConfig(required_scopes=["chat:write", "files:write"]))

    assert_failed(result, Status.DEGRADED, ErrorCategory.AUTH)
    assert "files:write" in result.error.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "handler",
    [
        answer(429, {"ok": False, "error": "ratelimited"}, **{"Retry-After": "30"}),
        answer(200, {"ok": False, "error": "ratelimited"}, **{"Retry-After": "30"}),
    ],
    ids=["http-429", "ok-false-ratelimited"],
)
async def test_rate_limit_is_degraded_with_retry_after(harness: Harness, handler: Handler) -> None:
    harness.serve(handler)

    result = await check(harness)

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.RATE_LIMITED, RecoveryAction.WAIT_AND_RETRY
    )
    assert result.error is not None and result.error.retry_after_seconds == 30.0


@pytest.mark.parametrize("status", [500, 503])
async def test_server_error_is_unreachable_and_transient(harness: Harness, status: int) -> None:
    harness.serve(answer(status, b"upstream connect error"))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR, transient=True)


async def test_other_slack_error_is_a_permanent_provider_error(harness: Harness) -> None:
    harness.serve(answer(200, {"ok": False, "error": "fatal_error"}))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR, transient=False)


@pytest.mark.parametrize(
    "body", [b"<html>Slack is down</html>", b'["ok"]'], ids=["html", "not-an-object"]
)
async def test_malformed_body_is_a_provider_error(harness: Harness, body: bytes) -> None:
    harness.serve(answer(200, body, **SCOPES))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR)
    assert "Slack is down" not in result.error.message  # type: ignore[union-attr]


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
    assert_no_secrets(result, BOT_TOKEN)


async def test_slow_answer_is_degraded(harness: Harness) -> None:
    harness.serve(slowly(answer(200, OK, **SCOPES)))

    result = await check(harness, SlackConfig(degraded_latency_ms=5))

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.PROVIDER_ERROR, RecoveryAction.WAIT_AND_RETRY
    )


async def test_base_url_override_is_used(harness: Harness) -> None:
    harness.serve(answer(200, OK, **SCOPES))
    config = parse_config("slack", {"baseUrl": "https://slack.sandbox.test/api/"})

    result = await check(harness, config)  # type: ignore[arg-type]

    assert result.status is Status.HEALTHY
    assert str(harness.requests[0].url) == "https://slack.sandbox.test/api/auth.test"

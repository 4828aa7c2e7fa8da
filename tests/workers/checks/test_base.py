"""The shared helpers: status classification, Retry-After, safe transport descriptions."""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from tests.workers.checks.fakes import ORG_ID, Harness, answer, assert_failed, slowly
from workers.checks import ADAPTERS
from workers.checks.base import (
    MAX_RETRY_AFTER_SECONDS,
    Adapter,
    classify_status,
    describe,
    oauth_error,
    retry_after,
)
from workers.checks.config import CREDENTIAL_MODELS
from workers.checks.guidance import Provider
from workers.checks.result import ErrorCategory, HealthError, RecoveryAction, Status

PROVIDER = Provider("The test service", "bearer")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FetchConfig:
    url: str = "https://service.test/ping"
    degraded_latency_ms: int | None = None


class FetchCheck(Adapter[FetchConfig]):
    """The smallest adapter: fetch a JSON object with stored credentials."""

    integration_type = "fetch"
    provider = PROVIDER

    async def probe(self, org_id: UUID, config: FetchConfig) -> HealthError | None:
        await self.credentials(org_id)
        response = await self.call("GET", config.url)
        self.fail_on_status(response)
        self.json_body(response)
        return None


def response(status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


# -- classify_status ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "category", "action", "transient"),
    [
        (401, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS, False),
        (403, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS, False),
        (429, ErrorCategory.RATE_LIMITED, RecoveryAction.WAIT_AND_RETRY, False),
        (500, ErrorCategory.PROVIDER_ERROR, RecoveryAction.CHECK_PROVIDER_STATUS, True),
        (503, ErrorCategory.PROVIDER_ERROR, RecoveryAction.CHECK_PROVIDER_STATUS, True),
        (404, ErrorCategory.CONFIGURATION, RecoveryAction.FIX_CONFIGURATION, False),
        (410, ErrorCategory.CONFIGURATION, RecoveryAction.FIX_CONFIGURATION, False),
        (418, ErrorCategory.PROVIDER_ERROR, RecoveryAction.CHECK_PROVIDER_STATUS, False),
    ],
)
def test_classify_status_names_each_error_status(
    status: int, category: ErrorCategory, action: RecoveryAction, transient: bool
) -> None:
    error = classify_status(PROVIDER, response(status))

    assert error is not None
    assert (error.category, error.recovery_action, error.transient) == (
        category,
        action,
        transient,
    )
    assert error.guidance


@pytest.mark.parametrize("status", [200, 204, 301, 399])
def test_classify_status_accepts_success_and_redirects(status: int) -> None:
    assert classify_status(PROVIDER, response(status)) is None


def test_oauth2_provider_auth_error_asks_to_reconnect() -> None:
    google = Provider("Gmail", "oauth2")

    error = classify_status(google, response(401))

    assert error is not None
    assert error.recovery_action is RecoveryAction.REAUTHENTICATE
    assert "Reconnect Gmail" in error.guidance


# -- retry_after ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("999999999", float(MAX_RETRY_AFTER_SECONDS)),
        ("Mon, 02 Mar 2026 09:01:00 GMT", 60.0),
        ("Mon, 02 Mar 2026 08:00:00 GMT", 0.0),
        ("Mon, 02 Mar 2026 09:01:00 -0000", 60.0),
        ("soon", None),
        ("-5", None),
        ("", None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date(header: str, seconds: float | None) -> None:
    assert retry_after(response(429, **{"Retry-After": header}), now=NOW) == seconds


def test_retry_after_is_none_without_the_header() -> None:
    assert retry_after(response(429), now=NOW) is None


def test_retry_after_without_now_measures_from_the_current_time() -> None:
    assert retry_after(response(429, **{"Retry-After": "Thu, 01 Jan 2015 00:00:00 GMT"})) == 0.0


# -- describe ------------------------------------------------------------------------


def caused_by(cause: BaseException, text: str = "failed") -> httpx.ConnectError:
    try:
        raise httpx.ConnectError(text) from cause
    except httpx.ConnectError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (caused_by(socket.gaierror(-2, "Name or service not known")), "DNS"),
        (caused_by(ssl.SSLCertVerificationError("bad cert")), "certificate"),
        (caused_by(ssl.SSLError("handshake")), "TLS handshake"),
        (caused_by(ConnectionRefusedError(111, "refused")), "refused"),
        (caused_by(ConnectionResetError(104, "reset")), "reset"),
        (httpx.ConnectError("[Errno -2] Name or service not known"), "DNS"),
        (httpx.ConnectError("nodename nor servname provided"), "DNS"),
        (httpx.ConnectError("certificate verify failed"), "TLS handshake"),
        (httpx.ConnectError("Connection refused"), "refused"),
        (httpx.RemoteProtocolError("Server disconnected"), "closed"),
        (httpx.ReadError(""), "closed"),
        (httpx.ConnectError("something odd at https://secret.example/?token=abc"), "failed"),
    ],
)
def test_describe_explains_transport_failures_without_urls(exc: Exception, words: str) -> None:
    text = describe(exc)

    assert words in text
    assert "secret.example" not in text and "token" not in text


# -- oauth_error ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"error": "invalid_grant", "error_description": "Bad Request"}', "invalid_grant"),
        (b'{"error": "Not A Code: <html>"}', None),
        (b'{"error": {"code": 400}}', None),
        (b"[]", None),
        (b"<html>oops</html>", None),
        (b"\xff\xfe", None),
    ],
)
def test_oauth_error_passes_only_a_plain_code(body: bytes, code: str | None) -> None:
    assert oauth_error(httpx.Response(400, content=body)) == code


# -- Adapter.check -------------------------------------------------------------------


async def test_answer_in_time_is_healthy(harness: Harness) -> None:
    harness.vault.put("fetch", {"token": "t"})
    harness.serve(answer(200, {"ok": True}))

    result = await FetchCheck(harness.ctx).check(ORG_ID, FetchConfig())

    assert result.status is Status.HEALTHY
    assert result.error is None
    assert result.checked_at == harness.clock.now
    assert result.latency_ms >= 0


async def test_slow_answer_is_degraded(harness: Harness) -> None:
    harness.vault.put("fetch", {"token": "t"})
    harness.serve(slowly(answer(200, {"ok": True})))

    result = await FetchCheck(harness.ctx).check(ORG_ID, FetchConfig(degraded_latency_ms=5))

    assert_failed(result, Status.DEGRADED, ErrorCategory.PROVIDER_ERROR)
    assert result.latency_ms >= 5
    assert "slowly" in result.error.message  # type: ignore[union-attr]


async def test_rate_limited_status_is_degraded_not_unreachable(harness: Harness) -> None:
    harness.vault.put("fetch", {"token": "t"})
    harness.serve(answer(429, {}, **{"Retry-After": "12"}))

    result = await FetchCheck(harness.ctx).check(ORG_ID, FetchConfig())

    assert_failed(result, Status.DEGRADED, ErrorCategory.RATE_LIMITED)
    assert result.error is not None and result.error.retry_after_seconds == 12.0


async def test_missing_credentials_is_a_configuration_error(harness: Harness) -> None:
    result = await FetchCheck(harness.ctx).check(ORG_ID, FetchConfig())

    assert_failed(
        result,
        Status.UNREACHABLE,
        ErrorCategory.CONFIGURATION,
        RecoveryAction.UPDATE_CREDENTIALS,
    )
    assert harness.requests == []


async def test_unreadable_credentials_ask_to_enter_them_again(harness: Harness) -> None:
    harness.vault.unreadable = True

    result = await FetchCheck(harness.ctx).check(ORG_ID, FetchConfig())

    assert_failed(
        result,
        Status.UNREACHABLE,
        ErrorCategory.CONFIGURATION,
        RecoveryAction.UPDATE_CREDENTIALS,
    )
    assert "decrypted" in result.error.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "exc", [httpx.UnsupportedProtocol("ftp"), httpx.InvalidURL("bad")], ids=["scheme", "url"]
)
async def test_unusable_address_is_a_configuration_error(harness: Harness, exc: Exception) -> None:
    def reject(request: httpx.Request) -> httpx.Response:
        raise exc

    harness.vault.put("fetch", {"token": "t"})
    harness.serve(reject)

    result = await FetchCheck(harness.ctx).check(ORG_ID, FetchConfig())

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.FIX_CONFIGURATION
    )


@pytest.mark.parametrize(
    "body", [b"<html>busy</html>", b"[1, 2]", b"\xff\xfe\x00"], ids=["html", "array", "binary"]
)
async def test_body_that_is_not_a_json_object_is_a_provider_error(
    harness: Harness, body: bytes
) -> None:
    harness.vault.put("fetch", {"token": "t"})
    harness.serve(answer(200, body))

    result = await FetchCheck(harness.ctx).check(ORG_ID, FetchConfig())

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR)
    assert "busy" not in result.error.message  # type: ignore[union-attr]


# -- registry --------------------------------------------------------------------------

MIGRATION = Path(__file__).parents[3] / "db" / "migrations" / "0002_integrations.sql"


def test_every_integration_type_has_an_adapter() -> None:
    assert set(ADAPTERS) == set(CREDENTIAL_MODELS)
    assert all(adapter.integration_type == key for key, adapter in ADAPTERS.items())


def test_adapters_name_providers_as_the_migration_does() -> None:
    # The seed rows: (key, display_name, category, auth_kind, interval, floor, docs_url).
    row = re.compile(r"^\s*\('(\w+)', '([^']+)', '\w+', '\w+', \d+", re.MULTILINE)
    rows = dict(row.findall(MIGRATION.read_text()))

    names = {key: a.provider.display_name.removeprefix("The ") for key, a in ADAPTERS.items()}

    assert names == rows

"""The adapter base: one timed probe, failures classified, slowness noticed.

An adapter implements `probe()`: it returns None when the provider answered
as it should, a HealthError for a DEGRADED answer (rate limited, missing
permission), or raises `CheckFailed` (via the helpers here) when it is
unreachable. `check()` wraps that with the latency and the timestamp.
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
import ssl
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from uuid import UUID

import httpx

from workers.checks import guidance
from workers.checks.context import CheckContext, Credentials, CredentialsUnavailable
from workers.checks.guidance import Provider
from workers.checks.result import HealthError, HealthResult, Status

DEFAULT_DEGRADED_LATENCY_MS = 5_000
MAX_RETRY_AFTER_SECONDS = 24 * 3600


class CheckFailed(Exception):
    """The provider is unreachable for us (or degraded, when status says so)."""

    def __init__(self, error: HealthError, status: Status = Status.UNREACHABLE) -> None:
        super().__init__(error.message)
        self.error = error
        self.status = status


class HealthCheck(Protocol):
    async def check(self, org_id: UUID, config: Any) -> HealthResult: ...


class _HasLatency(Protocol):
    @property
    def degraded_latency_ms(self) -> int | None: ...


C = TypeVar("C", bound=_HasLatency)


class Adapter(ABC, Generic[C]):
    provider: ClassVar[Provider]
    integration_type: ClassVar[str]

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx

    @abstractmethod
    async def probe(self, org_id: UUID, config: C) -> HealthError | None: ...

    async def check(self, org_id: UUID, config: C) -> HealthResult:
        checked_at = self.ctx.clock()
        started = time.perf_counter()
        status, error = Status.HEALTHY, None
        try:
            error = await self.probe(org_id, config)
            if error is not None:
                status = Status.DEGRADED
        except CheckFailed as failed:
            status, error = failed.status, failed.error
        latency_ms = round((time.perf_counter() - started) * 1000)
        threshold = config.degraded_latency_ms or DEFAULT_DEGRADED_LATENCY_MS
        if status is Status.HEALTHY and latency_ms > threshold:
            status, error = Status.DEGRADED, guidance.slow(self.provider, latency_ms, threshold)
        return HealthResult(status, latency_ms, checked_at, error)

    # -- helpers for probe() ------------------------------------------------

    async def optional_credentials(self, org_id: UUID) -> Credentials | None:
        try:
            return await self.ctx.credentials.load(org_id, self.integration_type)
        except CredentialsUnavailable:
            raise CheckFailed(guidance.unreadable_credentials(self.provider)) from None

    async def credentials(self, org_id: UUID) -> Credentials:
        found = await self.optional_credentials(org_id)
        if found is None:
            raise CheckFailed(guidance.missing_credentials(self.provider))
        return found

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP request; transport failures become classified CheckFailed."""
        try:
            return await self.ctx.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            timeout = self.ctx.http.timeout.read or 0
            raise CheckFailed(guidance.timed_out(self.provider, timeout)) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise CheckFailed(
                guidance.invalid_configuration(self.provider, "the address is not a valid URL")
            ) from None
        except httpx.TransportError as exc:
            raise CheckFailed(guidance.network_failure(self.provider, describe(exc))) from None

    def json_body(self, response: httpx.Response) -> dict[str, Any]:
        """The body as a JSON object, or PROVIDER_ERROR (never echoing the body)."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise CheckFailed(
                guidance.provider_error(
                    self.provider, f"an unexpected answer (HTTP {response.status_code}, not JSON)"
                )
            )
        return body

    def access_token(self, body: dict[str, Any]) -> str:
        """The access token of an OAuth token answer, or PROVIDER_ERROR."""
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise CheckFailed(
                guidance.provider_error(self.provider, "the token answer held no access token")
            )
        return token

    def fail_on_status(self, response: httpx.Response) -> None:
        """The usual meaning of HTTP error statuses; adapters handle special cases first."""
        error = classify_status(self.provider, response)
        if error is None:
            return
        degraded = error.category == "RATE_LIMITED"
        raise CheckFailed(error, Status.DEGRADED if degraded else Status.UNREACHABLE)


def classify_status(provider: Provider, response: httpx.Response) -> HealthError | None:
    code = response.status_code
    if code < 400:
        return None
    if code == 401:
        return guidance.auth_rejected(provider, "HTTP 401")
    if code == 403:
        return guidance.auth_rejected(provider, "HTTP 403: access denied")
    if code == 429:
        return guidance.rate_limited(provider, retry_after(response))
    if code >= 500:
        return guidance.provider_error(provider, f"HTTP {code}")
    if code in (404, 410):
        return guidance.invalid_configuration(
            provider, f"the provider answered {code} (not found): check the address"
        )
    return guidance.provider_error(provider, f"HTTP {code}", transient=False)


_OAUTH_CODE = re.compile(r"[a-z_]{1,64}")


def oauth_error(response: httpx.Response) -> str | None:
    """The `error` code of an OAuth2 error answer (RFC 6749 5.2), when it is a plain code.

    Safe to show: only a bare code passes, never a description or the body.
    """
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    code = body.get("error") if isinstance(body, dict) else None
    if isinstance(code, str) and _OAUTH_CODE.fullmatch(code):
        return code
    return None


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds (delta or HTTP date), bounded; None when absent or bad."""
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(min(int(raw), MAX_RETRY_AFTER_SECONDS))
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return float(min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS))


def describe(exc: BaseException) -> str:
    """A safe, plain description of a transport failure (no URLs, no bodies)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            return "the host name could not be resolved (DNS)"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "its TLS certificate could not be verified"
        if isinstance(cause, ssl.SSLError):
            return "the TLS handshake failed"
        if isinstance(cause, ConnectionRefusedError):
            return "the connection was refused"
        if isinstance(cause, ConnectionResetError):
            return "the connection was reset"
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text:
        return "the host name could not be resolved (DNS)"
    if "certificate" in text or "ssl" in text:
        return "the TLS handshake failed"
    if "refused" in text:
        return "the connection was refused"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "the connection was closed before a complete answer"
    return "the connection failed"

"""The adapters' edges, faked: an in-memory vault, a settable clock, scripted HTTP answers.

Only the HTTP boundary is faked (httpx.MockTransport); the adapters run as in production.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from workers.checks.context import CheckContext, CredentialsUnavailable, TokenCache
from workers.checks.result import ErrorCategory, HealthResult, RecoveryAction, Status

ORG_ID = UUID("00000000-0000-4000-8000-000000000001")
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class FakeVault:
    """A CredentialSource keeping payloads in memory and remembering what was saved."""

    def __init__(self) -> None:
        self.stored: dict[tuple[UUID, str], dict[str, str]] = {}
        self.saved: list[tuple[UUID, str, dict[str, str]]] = []
        self.unreadable = False

    def put(self, integration_type: str, payload: dict[str, str], org_id: UUID = ORG_ID) -> None:
        self.stored[(org_id, integration_type)] = dict(payload)

    async def load(self, org_id: UUID, integration_type: str) -> dict[str, str] | None:
        if self.unreadable:
            raise CredentialsUnavailable
        found = self.stored.get((org_id, integration_type))
        return dict(found) if found is not None else None

    async def save(self, org_id: UUID, integration_type: str, payload: dict[str, str]) -> None:
        self.saved.append((org_id, integration_type, dict(payload)))
        self.stored[(org_id, integration_type)] = dict(payload)


@dataclass
class FakeClock:
    now: datetime = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Harness:
    """Everything a check needs; `serve()` scripts the provider, `requests` records the calls."""

    vault: FakeVault = field(default_factory=FakeVault)
    clock: FakeClock = field(default_factory=FakeClock)
    tokens: TokenCache = field(default_factory=TokenCache)
    requests: list[httpx.Request] = field(default_factory=list)
    handler: Handler | None = None
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(
            transport=httpx.MockTransport(self._dispatch), timeout=httpx.Timeout(2.0)
        )

    @property
    def ctx(self) -> CheckContext:
        return CheckContext(self.http, self.vault, self.tokens, self.clock)

    def serve(self, handler: Handler) -> None:
        self.handler = handler

    def requests_to(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith(path)]

    async def _dispatch(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.handler is not None, "the test did not script the provider"
        answer = self.handler(request)
        return await answer if inspect.isawaitable(answer) else answer


# -- answers ----------------------------------------------------------------------


def answer(status: int = 200, body: Any = None, **headers: str) -> Handler:
    """A handler giving the same answer to every request (`body` JSON unless bytes)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handle


def slowly(handler: Handler, seconds: float = 0.03) -> Handler:
    async def handle(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(seconds)
        answer = handler(request)
        return await answer if inspect.isawaitable(answer) else answer

    return handle


def refuse_connection(request: httpx.Request) -> httpx.Response:
    cause = ConnectionRefusedError(111, "Connection refused")
    raise httpx.ConnectError("All connection attempts failed", request=request) from cause


def fail_dns(request: httpx.Request) -> httpx.Response:
    cause = socket.gaierror(-2, "Name or service not known")
    raise httpx.ConnectError("[Errno -2] Name or service not known", request=request) from cause


def time_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


# (handler, category, words the message must contain): every adapter meets these.
TRANSPORT_FAILURES = [
    pytest.param(refuse_connection, ErrorCategory.NETWORK, "refused", id="connection-refused"),
    pytest.param(fail_dns, ErrorCategory.NETWORK, "DNS", id="dns"),
    pytest.param(time_out, ErrorCategory.TIMEOUT, "2 seconds", id="read-timeout"),
]


# -- assertions -------------------------------------------------------------------


def assert_failed(
    result: HealthResult,
    status: Status,
    category: ErrorCategory,
    action: RecoveryAction | None = None,
    *,
    transient: bool | None = None,
) -> None:
    assert result.status is status, result
    assert result.error is not None
    assert result.error.category is category, result.error
    if action is not None:
        assert result.error.recovery_action is action, result.error
    if transient is not None:
        assert result.error.transient is transient, result.error
    assert result.error.message.strip()
    assert result.error.guidance.strip()


def assert_no_secrets(result: HealthResult, *secrets: str) -> None:
    """No credential or token value may reach what coordinators (and logs) see."""
    assert result.error is not None
    shown = " ".join([result.error.message, result.error.guidance, result.error.docs_url or ""])
    for secret in secrets:
        assert secret not in shown, f"a secret leaked into: {shown!r}"


# -- Google (Gmail, Calendar) -------------------------------------------------------

GOOGLE_CREDENTIALS = {
    "accessToken": "ya29.stale-access-secret",
    "refreshToken": "1//refresh-secret",
    "clientId": "client-123.apps.googleusercontent.com",
    "clientSecret": "GOCSPX-client-secret",
}
NEW_ACCESS_TOKEN = "ya29.fresh-access-secret"
GOOGLE_SECRETS = (
    GOOGLE_CREDENTIALS["accessToken"],
    GOOGLE_CREDENTIALS["refreshToken"],
    GOOGLE_CREDENTIALS["clientSecret"],
    NEW_ACCESS_TOKEN,
)
GOOGLE_TOKEN_HOST = "oauth2.googleapis.com"


def google_error(
    code: int, message: str, reason: str = "", grpc_status: str = "PERMISSION_DENIED"
) -> dict[str, Any]:
    """Google's JSON error shape (`{"error": {code, message, errors, status}}`)."""
    errors = [{"message": message, "domain": "global", "reason": reason}] if reason else []
    return {"error": {"code": code, "message": message, "errors": errors, "status": grpc_status}}


UNAUTHENTICATED = google_error(
    401,
    "Request had invalid authentication credentials.",
    "authError",
    grpc_status="UNAUTHENTICATED",
)


def grant(token: str = NEW_ACCESS_TOKEN, **extra: Any) -> Handler:
    return answer(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer", **extra})


def accepting(token: str, then: Handler) -> Handler:
    """An API that answers `then` for the given bearer token and 401 for any other."""

    def handle(request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
        if request.headers.get("authorization") != f"Bearer {token}":
            return httpx.Response(401, json=UNAUTHENTICATED)
        return then(request)

    return handle


def google(api: Handler, token_endpoint: Handler | None = None) -> Handler:
    """Route the token endpoint and the API to their own handlers."""
    token_handler = token_endpoint or grant()

    def handle(request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
        if request.url.host == GOOGLE_TOKEN_HOST or request.url.path.endswith("/token"):
            return token_handler(request)
        return api(request)

    return handle


def form(request: httpx.Request) -> dict[str, str]:
    return dict(httpx.QueryParams(request.content.decode()))

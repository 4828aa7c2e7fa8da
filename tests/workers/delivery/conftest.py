"""Fakes at the network boundary only: a real SMTP server (aiosmtpd) and a real HTTP
receiver (Starlette on uvicorn) on 127.0.0.1; Postgres is the real one of tests/conftest."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
import uvicorn
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db import channels, outbox
from db.scope import as_service
from db.vault import Vault
from embedded import free_port
from tests.factories import make_org
from workers.delivery.outbox import Deliverer
from workers.delivery.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)

# -- the HTTP receiver (webhooks, Apprise json://) ---------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signature_ok: bool | None  # None: the endpoint has no secret

    def json(self) -> Any:
        return json.loads(self.body)


SLOW = -1  # in an endpoint's script: answer 200, but only after two seconds


@dataclass
class Endpoint:
    """One receiving URL: answers `script` in turn (then 200), verifies signatures when it
    knows the secret, and processes each idempotency key once, as integrators should."""

    secret: str | None = None
    script: list[int] = field(default_factory=list)
    retry_after: str | None = None
    requests: list[Received] = field(default_factory=list)
    processed: dict[str, Any] = field(default_factory=dict)


class Receiver:
    def __init__(self) -> None:
        self.url = ""
        self._endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()

    def endpoint(
        self,
        *,
        secret: str | None = None,
        script: list[int] | None = None,
        retry_after: str | None = None,
        token: str | None = None,
    ) -> tuple[str, Endpoint]:
        """A fresh URL (with `token` as a path segment, like Slack's) and its endpoint."""
        name = f"hooks/{uuid4().hex}" + (f"/{token}" if token else "")
        endpoint = Endpoint(secret=secret, script=list(script or []), retry_after=retry_after)
        with self._lock:
            self._endpoints[name] = endpoint
        return f"{self.url}/{name}", endpoint

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path.lstrip("/")
        with self._lock:
            endpoint = self._endpoints.get(path)
        if endpoint is None:
            return Response(status_code=404)
        signature_ok = None
        if endpoint.secret is not None:
            signature_ok = verify_signature(
                endpoint.secret,
                request.headers.get(TIMESTAMP_HEADER, ""),
                body,
                request.headers.get(SIGNATURE_HEADER, ""),
            )
        with self._lock:
            status = endpoint.script.pop(0) if endpoint.script else 200
        if status == SLOW:
            await asyncio.sleep(2)
            status = 200
        with self._lock:
            if signature_ok is False:
                status = 401
            endpoint.requests.append(
                Received(path, dict(request.headers), body, status, signature_ok)
            )
            if status == 200:
                key = request.headers.get(IDEMPOTENCY_HEADER) or json.loads(body).get("message")
                endpoint.processed.setdefault(key, json.loads(body))
        headers = {"Retry-After": endpoint.retry_after} if endpoint.retry_after else None
        # A body that must never end up in last_error.
        return JSONResponse({"error": "receiver says no", "echo": path}, status, headers=headers)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/{path:path}", rec.handle, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the receiver did not start")
        time.sleep(0.02)
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    server.should_exit = True
    thread.join(10)


# -- the SMTP server --------------------------------------------------------------------


@dataclass
class Mailbox:
    host: str
    port: int
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted)

    def messages(self) -> list[EmailMessage]:
        out = []
        for envelope in self.envelopes:
            assert isinstance(envelope.content, bytes)
            parsed = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mailbox.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    mailbox: Mailbox
    server: asyncio.Server


async def start_smtp(credentials: tuple[str, str] | None = None) -> SmtpServer:
    """An SMTP server in this test's event loop; with `credentials`, it checks logins."""
    loop = asyncio.get_running_loop()
    mailbox = Mailbox("127.0.0.1", 0)

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert credentials is not None and isinstance(data, LoginPassword)
        ok = (data.login.decode(), data.password.decode()) == credentials
        mailbox.logins.append((data.login.decode(), ok))
        # handled=False: aiosmtpd answers (235 or 535) itself.
        return AuthResult(success=ok, handled=False)

    def factory() -> SMTP:
        return SMTP(
            _Handler(mailbox),
            hostname="mail.test",
            loop=loop,
            # AUTH without TLS is fine on loopback in a test. Not `auth_required`: with
            # plain text allowed aiosmtpd warns (UserWarning) about it; the client logs in
            # whenever it has credentials, and the test asserts that it did.
            auth_require_tls=False,
            authenticator=authenticate if credentials else None,
        )

    server = await loop.create_server(factory, "127.0.0.1", 0)
    mailbox.port = server.sockets[0].getsockname()[1]
    return SmtpServer(mailbox, server)


@pytest.fixture
async def smtp() -> AsyncIterator[Mailbox]:
    running = await start_smtp()
    yield running.mailbox
    running.server.close()
    await running.server.wait_closed()


# -- the worker's side ------------------------------------------------------------------


@pytest.fixture
def vault() -> Vault:
    return Vault([("k1", b"k" * 32)])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
def deliverer(pool: asyncpg.Pool, vault: Vault, http: httpx.AsyncClient) -> Deliverer:
    # No jitter: retry times are exact, so tests can step the clock to them.
    return Deliverer(pool=pool, vault=vault, http=http, jitter=lambda: 0.0)


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        return await make_org(conn)


async def make_channel(
    pool: asyncpg.Pool,
    vault: Vault,
    org_id: UUID,
    kind: str,
    target: str = "",
    *,
    secret: str | None = None,
    min_severity: str = "INFO",
    enabled: bool = True,
) -> channels.Channel:
    async with as_service(pool) as conn:
        channel = await channels.add(
            conn,
            vault,
            org_id=org_id,
            kind=kind,
            target=target,
            secret=secret,
            min_severity=min_severity,
        )
        if not enabled:
            await conn.execute(
                "UPDATE notification_channels SET enabled = false WHERE id = $1", channel.id
            )
    return channel


class Clock:
    """The dispatcher's clock, stepped by hand: backoff is honoured without sleeping."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC).replace(microsecond=0)

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def enqueue_one(
    pool: asyncpg.Pool,
    org_id: UUID,
    *,
    key: str | None = None,
    now: datetime | None = None,
    severity: str = "CRITICAL",
    title: str = "Slack is unreachable",
    body: str = "The connection was refused.\n\nThe monitor keeps retrying.",
) -> str:
    """Queue one message as the alerting engine does; its message key."""
    key = key or f"alert:{uuid4().hex}"
    async with as_service(pool) as conn:
        await outbox.enqueue(
            conn,
            org_id=org_id,
            alert_id=None,
            severity=severity,
            title=title,
            body=body,
            idempotency_key=key,
            now=now,
        )
    return key


async def outbox_rows(pool: asyncpg.Pool, org_id: UUID) -> list[outbox.OutboxMessage]:
    async with as_service(pool) as conn:
        return await outbox.list_for_org(conn, org_id)


async def channel(pool: asyncpg.Pool, channel_id: UUID) -> channels.Channel:
    async with as_service(pool) as conn:
        found = await channels.get(conn, channel_id)
    assert found is not None
    return found

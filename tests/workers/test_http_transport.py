"""The worker's httpx client on aiohttp, against real sockets."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
from aiohttp import web

from embedded import free_port
from settings import Settings
from tests.workers.checks.fakes import FakeVault
from workers.checks.base import describe
from workers.checks.config import HttpConfig
from workers.checks.context import CheckContext
from workers.checks.http import HttpCheck
from workers.checks.result import Status
from workers.main import http_client


async def _echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "body": (await request.read()).decode(),
            "cookie": request.headers.get("Cookie"),
            "userAgent": request.headers.get("User-Agent"),
            "authorization": request.headers.get("Authorization"),
        }
    )


async def _sets_cookie(_: web.Request) -> web.Response:
    response = web.json_response({"ok": True})
    response.set_cookie("session", "org-a-session")
    return response


async def _gzip(_: web.Request) -> web.Response:
    body = gzip.compress(json.dumps({"ok": True}).encode())
    return web.Response(body=body, headers={"Content-Encoding": "gzip"}, content_type="text/json")


async def _redirect(_: web.Request) -> web.Response:
    raise web.HTTPFound("/echo")


async def _drop(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.1)
    return web.Response()


async def _hang(_: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/cookie", _sets_cookie)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/drop", _drop)
    app.router.add_get("/hang", _hang)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.model_validate(
        {"IHM_JWT_SECRET": "x" * 40, "IHM_CHECK_TIMEOUT_SECONDS": "1"}
    )
    http = http_client(settings)
    yield http
    await http.aclose()


async def test_requests_and_answers_pass_through_unchanged(
    client: httpx.AsyncClient, server: str
) -> None:
    response = await client.post(
        f"{server}/echo", data={"grant_type": "client_credentials"}, headers={"Authorization": "X"}
    )

    assert response.status_code == 200
    assert response.json()["method"] == "POST"
    assert response.json()["body"] == "grant_type=client_credentials"
    assert response.json()["authorization"] == "X"
    assert response.json()["userAgent"].startswith("integration-health-monitor/")
    assert response.headers["content-type"].startswith("application/json")


async def test_compressed_answers_are_decoded_and_redirects_not_followed(
    client: httpx.AsyncClient, server: str
) -> None:
    assert (await client.get(f"{server}/gzip")).json() == {"ok": True}
    redirect = await client.get(f"{server}/redirect")
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "/echo"


async def test_no_cookie_set_for_one_request_travels_with_the_next(
    client: httpx.AsyncClient, server: str
) -> None:
    await client.get(f"{server}/cookie")

    assert (await client.get(f"{server}/echo")).json()["cookie"] is None


async def test_many_concurrent_requests_share_the_pool(
    client: httpx.AsyncClient, server: str
) -> None:
    # (fewer than the test server's listen backlog: it accepts in the test's own loop)
    answers = await asyncio.gather(*(client.get(f"{server}/echo") for _ in range(100)))

    assert {a.status_code for a in answers} == {200}


async def test_a_refused_connection_is_a_connect_error_that_says_so(
    client: httpx.AsyncClient,
) -> None:
    with pytest.raises(httpx.ConnectError) as raised:
        await client.get(f"http://127.0.0.1:{free_port()}/")

    assert describe(raised.value) == "the connection was refused"


async def test_an_unknown_host_is_a_dns_failure(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ConnectError) as raised:
        await client.get("http://no-such-host.invalid/")

    assert describe(raised.value) == "the host name could not be resolved (DNS)"


async def test_a_dropped_connection_is_a_transport_error(
    client: httpx.AsyncClient, server: str
) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(f"{server}/drop")


async def test_a_silent_server_is_a_read_timeout(client: httpx.AsyncClient, server: str) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await client.get(f"{server}/hang")


async def test_adapters_classify_failures_through_this_transport(
    client: httpx.AsyncClient, server: str
) -> None:
    check = HttpCheck(CheckContext(http=client, credentials=FakeVault()))
    parse = HttpConfig.model_validate

    healthy = await check.check(uuid4(), parse({"url": f"{server}/echo"}))
    dropped = await check.check(uuid4(), parse({"url": f"{server}/drop"}))
    silent = await check.check(uuid4(), parse({"url": f"{server}/hang"}))

    assert healthy.status is Status.HEALTHY
    assert dropped.status is Status.UNREACHABLE
    assert dropped.error is not None and dropped.error.category.value == "NETWORK"
    assert silent.error is not None and silent.error.category.value == "TIMEOUT"


async def test_the_environments_http_proxy_is_used_unless_no_proxy_names_the_host(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test server answers absolute-form requests, as a forward proxy would.
    monkeypatch.setenv("HTTP_PROXY", server)
    monkeypatch.setenv("NO_PROXY", "direct.invalid")
    settings = Settings.model_validate({"IHM_JWT_SECRET": "x" * 40})
    http = http_client(settings)
    try:
        proxied = await http.get("http://provider.invalid/echo")
        with pytest.raises(httpx.ConnectError):
            await http.get("http://direct.invalid/echo")
    finally:
        await http.aclose()

    assert proxied.status_code == 200
    assert proxied.json()["method"] == "GET"

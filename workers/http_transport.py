"""httpx on aiohttp's connection pool: the worker's transport to providers.

Adapters speak httpx (requests, responses, exceptions). Underneath, httpcore 1.0's
pool re-scans every connection on each request (quadratic in the pool size, with a
`poll()` per idle connection) and closes idle connections whenever the pool holds
more than the keep-alive limit; at a worker's concurrency that was half its CPU.
aiohttp's connector keeps idle connections per host in a queue. This transport
hands httpx's request to an aiohttp session and gives back an httpx response, with
aiohttp's errors raised as the httpx errors adapters classify (timeouts, refused or
reset connections, TLS and DNS failures keep their cause for `describe`).

No cookie is ever kept: the worker checks many orgs' accounts at the same hosts, and
one org's session cookie must never travel with another org's request.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.request import getproxies_environment, proxy_bypass

import aiohttp
import httpx

CHUNK_BYTES = 64 * 1024


@contextmanager
def httpx_errors() -> Iterator[None]:
    """aiohttp's failures as httpx's, the original kept as the cause."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout("timed out while connecting") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout("timed out waiting for the answer") from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise httpx.UnsupportedProtocol("not an http(s) address") from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError("could not connect") from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError("the server closed the connection") from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError("the server sent a malformed answer") from exc
    except aiohttp.ClientOSError as exc:
        raise httpx.ReadError("the connection failed") from exc
    except aiohttp.ClientError as exc:
        raise httpx.NetworkError("the request failed") from exc


class _RefuseCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


def no_cookies() -> CookieJar:
    """For httpx's own jar, which would otherwise keep what responses set."""
    return CookieJar(policy=_RefuseCookies())


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with httpx_errors():
            async for chunk in self._response.content.iter_chunked(CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        # Back to the pool when the body was read to the end; closed otherwise.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (created on first use, inside the running loop)."""

    def __init__(self, limits: httpx.Limits, *, verify: ssl.SSLContext | None = None) -> None:
        self._limits = limits
        self._ssl = verify or httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._proxies = getproxies_environment()

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry or 5.0,
            ssl=self._ssl,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx decodes, as it would with its own transport
            # aiohttp's trust_env looks the proxy up in a thread on every request: the
            # environment's proxies are read once here instead (`_proxy_for`).
            trust_env=False,
        )

    def _proxy_for(self, url: httpx.URL) -> str | None:
        """HTTP(S)_PROXY and NO_PROXY, as httpx honours them."""
        proxy = self._proxies.get(url.scheme)
        if proxy is None or proxy_bypass(url.host):
            return None
        return proxy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        with httpx_errors():
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                compress=None,
                proxy=self._proxy_for(request.url) if self._proxies else None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

"""Provider simulator: the lightweight endpoints of every provider, with failures on demand.

Tests, the `ihm up` demo and benchmarks point adapters' `baseUrl` at
`http://127.0.0.1:9100/{key}/<provider>/...`. Each key (typically one per
integration) has its own mode, set at runtime through `PUT /_control/{key}`, so
one org's Slack can be rate limited while another's is healthy.

`hang` and `drop` only behave as on the wire behind a real server (`run()` or
`uvicorn.Server`); `httpx.ASGITransport` cannot express a dropped connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")

# How long `hang` holds a request whose client never gives up.
HANG_SECONDS = 3600


# --- Modes -----------------------------------------------------------------------------------


class Param(NamedTuple):
    default: int | None  # None: the parameter is required
    low: int
    high: int


# Every mode and the integer parameters it takes.
MODES: dict[str, dict[str, Param]] = {
    "ok": {},
    "slow": {"ms": Param(None, 0, 600_000)},
    "hang": {},
    "auth": {},
    "token_revoked": {},
    "expired_token": {},
    "invalid_grant": {},
    "missing_scope": {},
    "rate_limited": {"retryAfter": Param(30, 0, 86_400)},
    "server_error": {"status": Param(500, 500, 599)},
    "malformed": {},
    "drop": {},
    "not_found": {},
}

# Modes in which provider API routes reject the caller's credentials. Only Slack tells
# `token_revoked` apart; `expired_token` still accepts tokens this key's token endpoints issued.
CREDENTIAL_MODES = frozenset({"auth", "token_revoked", "expired_token", "invalid_grant"})

ROUTE_NAMES = (
    "slack.auth_test",
    "gmail.messages",
    "calendar.events",
    "google.token",
    "xledger.graphql",
    "dynamics.token",
    "dynamics.companies",
    "http",
)


class ControlError(ValueError):
    """A control request the simulator cannot act on (answered with 400)."""


def parse_mode(body: object) -> tuple[str, dict[str, int]]:
    """Validate a `PUT /_control/{key}` body; returns the mode and its params, defaults filled."""
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    mode = body.get("mode")
    if not isinstance(mode, str) or mode not in MODES:
        raise ControlError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    spec = MODES[mode]
    unknown = sorted(set(body) - {"mode"} - set(spec))
    if unknown:
        # Rejected rather than ignored, so a typo such as `retry_after` cannot pass silently.
        raise ControlError(f"mode {mode!r} does not take {', '.join(unknown)}")
    params: dict[str, int] = {}
    for name, param in spec.items():
        value = body.get(name, param.default)
        if value is None:
            raise ControlError(f"mode {mode!r} requires {name!r}")
        # bool is an int subclass; `true` is not a duration.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ControlError(f"{name!r} must be an integer")
        if not param.low <= value <= param.high:
            raise ControlError(f"{name!r} must be between {param.low} and {param.high}")
        params[name] = value
    return mode, params


@dataclass
class KeyState:
    mode: str = "ok"
    params: dict[str, int] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    # Access tokens handed out by this key's token endpoints; `expired_token` accepts only these.
    issued_tokens: set[str] = field(default_factory=set)

    def issue_token(self, prefix: str) -> str:
        token = prefix + secrets.token_urlsafe(24)
        self.issued_tokens.add(token)
        return token

    def snapshot(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "params": dict(self.params),
            "requests": {name: self.requests[name] for name in ROUTE_NAMES},
        }


# --- Provider error shapes -------------------------------------------------------------------


class Family(StrEnum):
    """Providers that share an error body shape."""

    SLACK = "slack"
    GOOGLE = "google"
    XLEDGER = "xledger"
    DYNAMICS = "dynamics"
    HTTP = "http"


# What each provider says for a status: (code, message). The code is Slack's `error`, Google's
# `status` and Dynamics' `error.code`; Xledger and plain HTTP show only the message.
# 500 stands for every 5xx. Slack reports auth failures in a 200 body (see `unauthorized`).
ERROR_TEXT: dict[Family, dict[int, tuple[str, str]]] = {
    Family.SLACK: {
        404: ("unknown_method", "Unknown method"),
        429: ("ratelimited", "Rate limited"),
        500: ("internal_error", "Internal error"),
    },
    Family.GOOGLE: {
        401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
        403: ("PERMISSION_DENIED", "Request had insufficient authentication scopes."),
        404: ("NOT_FOUND", "Requested entity was not found."),
        429: ("RESOURCE_EXHAUSTED", "Quota exceeded"),
        500: ("INTERNAL", "Internal error encountered."),
    },
    Family.XLEDGER: {
        401: ("", "Invalid or expired token"),
        404: ("", "Not found"),
        429: ("", "Too many requests"),
        500: ("", "Internal server error"),
    },
    Family.DYNAMICS: {
        401: ("Authentication_InvalidCredentials", "The credentials provided are incorrect."),
        403: ("Authorization_RequestDenied", "The application has no access to this company."),
        404: ("NotFound", "The tenant or environment does not exist."),
        429: ("Application_TooManyRequests", "Too many requests."),
        500: ("InternalServerError", "Something went wrong."),
    },
    Family.HTTP: {
        401: ("", "unauthorized"),
        404: ("", "not found"),
        429: ("", "too many requests"),
        500: ("", "server error"),
    },
}


def provider_error(family: Family, status: int, headers: dict[str, str] | None = None) -> Response:
    """An error response in the provider's own body shape."""
    code, message = ERROR_TEXT[family].get(status) or ERROR_TEXT[family][500]
    body: dict[str, Any]
    match family:
        case Family.SLACK:
            body = {"ok": False, "error": code}
        case Family.GOOGLE:
            body = {"error": {"code": status, "message": message, "status": code}}
        case Family.XLEDGER:
            body = {"errors": [{"message": message}]}
        case Family.DYNAMICS:
            body = {"error": {"code": code, "message": message}}
        case Family.HTTP:
            return PlainTextResponse(message, status, headers)
    return JSONResponse(body, status, headers)


def unauthorized(family: Family, slack_error: str = "invalid_auth") -> Response:
    if family is Family.SLACK:
        # Slack answers 200 and puts the reason in the body.
        return JSONResponse({"ok": False, "error": slack_error})
    headers = (
        {"WWW-Authenticate": 'Bearer error="invalid_token"'} if family is Family.GOOGLE else None
    )
    return provider_error(family, 401, headers)


def oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status)


# --- Transport-level misbehaviour --------------------------------------------------------------


class DroppedResponse(Response):
    """Promises a body, sends part of it and stops; the server then closes the connection.

    Returning without completing the response (rather than raising) makes uvicorn close the
    socket without a traceback, and the client sees the peer hang up mid-body.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"ok": ', "more_body": True})


async def hang(request: Request) -> Response:
    # Wait for the client to hang up rather than sleep blindly: the request task then ends with
    # the connection instead of holding up server shutdown for an hour.
    with anyio.move_on_after(HANG_SECONDS):
        while (await request.receive())["type"] != "http.disconnect":
            pass
    return Response(status_code=504)


async def mode_failure(request: Request, family: Family, key: KeyState) -> Response | None:
    """The response for modes that fail the same way whatever the credentials; else None."""
    match key.mode:
        case "hang":
            return await hang(request)
        case "drop":
            return DroppedResponse()
        case "malformed":
            return Response(b"<html>oops", media_type="application/json")
        case "not_found":
            return provider_error(family, 404)
        case "rate_limited":
            return provider_error(family, 429, {"Retry-After": str(key.params["retryAfter"])})
        case "server_error":
            return provider_error(family, key.params["status"])
    return None


# --- Provider routes -------------------------------------------------------------------------


def authorization(request: Request, scheme: str) -> str | None:
    """The credential after `Authorization: <scheme> `, or None when absent or empty."""
    given, _, credential = request.headers.get("authorization", "").partition(" ")
    if given.lower() != scheme or not credential.strip():
        return None
    return credential.strip()


def bearer_token(request: Request) -> str | None:
    return authorization(request, "bearer")


def xledger_token(request: Request) -> str | None:
    return authorization(request, "token")


def no_credentials(request: Request) -> str | None:
    return ""  # the generic HTTP check may send credentials but need not


SLACK_IDENTITY = {
    "ok": True,
    "url": "https://sim.slack.com/",
    "team": "Sim",
    "user": "ihm-bot",
    "team_id": "T1",
    "user_id": "U1",
}
SLACK_SCOPES = "chat:write,channels:read,users:read"
GOOGLE_SCOPES = (
    "https://www.googleapis.com/auth/gmail.readonly "
    "https://www.googleapis.com/auth/calendar.readonly"
)

# The healthy answer of a route; the flag says the credentials lack a scope (`missing_scope`).
Answer = Callable[[Request, bool], Awaitable[Response]]


async def slack_auth_test(request: Request, missing_scope: bool) -> Response:
    scopes = "users:read" if missing_scope else SLACK_SCOPES
    return JSONResponse(SLACK_IDENTITY, headers={"X-OAuth-Scopes": scopes})


async def gmail_messages(request: Request, missing_scope: bool) -> Response:
    if missing_scope:
        return provider_error(Family.GOOGLE, 403)
    return JSONResponse({"messages": [{"id": "m1", "threadId": "t1"}], "resultSizeEstimate": 1})


async def calendar_events(request: Request, missing_scope: bool) -> Response:
    # Read-only access still answers 200; the adapter must notice the access role.
    role = "reader" if missing_scope else "owner"
    return JSONResponse({"kind": "calendar#events", "accessRole": role, "items": []})


async def xledger_graphql(request: Request, missing_scope: bool) -> Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return JSONResponse({"errors": [{"message": "Expected a JSON body with a query"}]}, 400)
    return JSONResponse({"data": {"__typename": "Query"}})


async def dynamics_companies(request: Request, missing_scope: bool) -> Response:
    if missing_scope:
        return provider_error(Family.DYNAMICS, 403)
    return JSONResponse({"value": [{"id": "c1", "name": "CRONUS"}]})


async def http_ok(request: Request, missing_scope: bool) -> Response:
    return PlainTextResponse("ok")


@dataclass(frozen=True)
class ApiRoute:
    name: str  # the request counter's name
    paths: tuple[str, ...]
    methods: tuple[str, ...]
    family: Family
    credential: Callable[[Request], str | None]
    answer: Answer
    # Accepts tokens from this key's token endpoint in `expired_token` mode (clients refresh).
    refreshable: bool = False


API_ROUTES = (
    ApiRoute(
        "slack.auth_test",
        ("/{key}/slack/api/auth.test",),
        ("POST",),
        Family.SLACK,
        bearer_token,
        slack_auth_test,
    ),
    ApiRoute(
        "gmail.messages",
        ("/{key}/google/gmail/v1/users/me/messages",),
        ("GET",),
        Family.GOOGLE,
        bearer_token,
        gmail_messages,
        refreshable=True,
    ),
    ApiRoute(
        "calendar.events",
        ("/{key}/google/calendar/v3/calendars/primary/events",),
        ("GET",),
        Family.GOOGLE,
        bearer_token,
        calendar_events,
        refreshable=True,
    ),
    ApiRoute(
        "xledger.graphql",
        ("/{key}/xledger/graphql",),
        ("POST",),
        Family.XLEDGER,
        xledger_token,
        xledger_graphql,
    ),
    ApiRoute(
        "dynamics.companies",
        ("/{key}/dynamics/v2.0/{tenant}/{environment}/api/v2.0/companies",),
        ("GET",),
        Family.DYNAMICS,
        bearer_token,
        dynamics_companies,
        refreshable=True,
    ),
    ApiRoute(
        "http",
        ("/{key}/http", "/{key}/http/{path:path}"),
        ("GET", "HEAD"),
        Family.HTTP,
        no_credentials,
        http_ok,
    ),
)


def credential_failure(request: Request, route: ApiRoute, key: KeyState) -> Response | None:
    credential = route.credential(request)
    if credential is None:
        return unauthorized(route.family, slack_error="not_authed")
    if key.mode not in CREDENTIAL_MODES:
        return None
    if key.mode == "expired_token" and route.refreshable and credential in key.issued_tokens:
        return None
    return unauthorized(
        route.family, slack_error=key.mode if key.mode == "token_revoked" else "invalid_auth"
    )


async def read_form(request: Request) -> dict[str, str]:
    # Parsed by hand: Starlette's form parser needs python-multipart, which the project lacks.
    fields = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    return {name: values[0] for name, values in fields.items()}


def missing_field(form: dict[str, str], *names: str) -> str | None:
    return next((name for name in names if not form.get(name)), None)


# --- The app ---------------------------------------------------------------------------------


Endpoint = Callable[[Request], Awaitable[Response]]


class Simulator:
    """Per-key modes, counters and issued tokens, and the endpoints that consult them."""

    def __init__(self) -> None:
        self.keys: dict[str, KeyState] = {}

    def key_state(self, request: Request, route_name: str) -> KeyState:
        """The calling key's state, with this request counted."""
        key = request.path_params["key"]
        if not KEY_PATTERN.fullmatch(key):
            raise HTTPException(404, "invalid key")
        state = self.keys.setdefault(key, KeyState())
        state.requests[route_name] += 1
        return state

    def api_endpoint(self, route: ApiRoute) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            key = self.key_state(request, route.name)
            await maybe_slow(key)
            if (failure := await mode_failure(request, route.family, key)) is not None:
                return failure
            if (failure := credential_failure(request, route, key)) is not None:
                return failure
            return await route.answer(request, key.mode == "missing_scope")

        return endpoint

    # Token endpoints are only affected by `slow` and by the modes named below: an adapter
    # under test should reach the API call, where the interesting failures happen.

    async def google_token(self, request: Request) -> Response:
        key = self.key_state(request, "google.token")
        await maybe_slow(key)
        form = await read_form(request)
        grant = form.get("grant_type")
        # The authorization-code exchange of a re-authorization (any code but "bad").
        if grant == "authorization_code":
            missing = missing_field(form, "code", "client_id", "client_secret", "redirect_uri")
            if missing:
                return oauth_error(400, "invalid_request", f"Missing required parameter: {missing}")
            if form["code"] == "bad" or key.mode == "invalid_grant":
                return oauth_error(400, "invalid_grant", "Malformed auth code.")
            return JSONResponse(
                {
                    "access_token": key.issue_token("ya29.sim-"),
                    "refresh_token": "1//sim-refresh-" + form["code"],
                    "expires_in": 3599,
                    "token_type": "Bearer",
                    "scope": GOOGLE_SCOPES,
                }
            )
        if grant != "refresh_token":
            return oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        missing = missing_field(form, "refresh_token", "client_id", "client_secret")
        if missing:
            return oauth_error(400, "invalid_request", f"Missing required parameter: {missing}")
        if key.mode == "invalid_grant":
            return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        return JSONResponse(
            {
                "access_token": key.issue_token("ya29.sim-"),
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": GOOGLE_SCOPES,
            }
        )

    async def dynamics_token(self, request: Request) -> Response:
        key = self.key_state(request, "dynamics.token")
        await maybe_slow(key)
        form = await read_form(request)
        if form.get("grant_type") != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "AADSTS70003: Unsupported grant.")
        missing = missing_field(form, "client_id", "client_secret", "scope")
        if missing:
            return oauth_error(
                400,
                "invalid_request",
                f"AADSTS900144: The request body must contain the following parameter: "
                f"'{missing}'.",
            )
        if key.mode in {"auth", "token_revoked", "invalid_grant"}:
            return oauth_error(
                401, "invalid_client", "AADSTS7000215: Invalid client secret provided."
            )
        return JSONResponse(
            {
                "access_token": key.issue_token("sim-aad-"),
                "expires_in": 3599,
                "token_type": "Bearer",
            }
        )

    # Control API.

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def get_key(self, request: Request) -> Response:
        key = control_key(request)
        return JSONResponse(self.keys.get(key, KeyState()).snapshot())

    async def put_key(self, request: Request) -> Response:
        key = control_key(request)
        try:
            body = await request.json()
        except ValueError as exc:
            raise ControlError("body is not JSON") from exc
        mode, params = parse_mode(body)
        state = self.keys.setdefault(key, KeyState())
        state.mode, state.params = mode, params
        return JSONResponse(state.snapshot())

    async def delete_key(self, request: Request) -> Response:
        self.keys.pop(control_key(request), None)
        return Response(status_code=204)

    async def delete_all(self, request: Request) -> Response:
        self.keys.clear()
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        control = [
            # Before `/_control/{key}`, which would otherwise take "healthz" for a key.
            Route("/_control/healthz", self.healthz, methods=["GET"]),
            Route("/_control", self.delete_all, methods=["DELETE"]),
            Route("/_control/{key}", self.get_key, methods=["GET"]),
            Route("/_control/{key}", self.put_key, methods=["PUT"]),
            Route("/_control/{key}", self.delete_key, methods=["DELETE"]),
        ]
        tokens = [
            Route("/{key}/google/token", self.google_token, methods=["POST"]),
            Route(
                "/{key}/dynamics/token/{tenant}/oauth2/v2.0/token",
                self.dynamics_token,
                methods=["POST"],
            ),
        ]
        apis = [
            Route(path, self.api_endpoint(route), methods=list(route.methods))
            for route in API_ROUTES
            for path in route.paths
        ]
        return control + tokens + apis


async def maybe_slow(key: KeyState) -> None:
    if key.mode == "slow":
        await asyncio.sleep(key.params["ms"] / 1000)


def control_key(request: Request) -> str:
    key: str = request.path_params["key"]
    if not KEY_PATTERN.fullmatch(key):
        raise ControlError("keys match [A-Za-z0-9_.-]+")
    return key


async def control_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, 400)


def create_simulator_app() -> Starlette:
    simulator = Simulator()
    app = Starlette(routes=simulator.routes(), exception_handlers={ControlError: control_error})
    app.state.simulator = simulator
    return app


class _QuietSimulatedFailures(logging.Filter):
    # `drop` abandons responses and shutdown cancels `hang`ing requests, both on purpose;
    # uvicorn would log each as an application error, with a traceback.
    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("ASGI callable returned without completing"):
            return False
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def run(host: str = "127.0.0.1", port: int = 9100) -> None:
    config = uvicorn.Config(
        create_simulator_app(),
        host=host,
        port=port,
        log_level="warning",
        ws="none",  # plain HTTP only
        # Cancels requests still hanging (mode `hang`) when the server is asked to stop.
        timeout_graceful_shutdown=1,
    )
    # Config() has just configured uvicorn's loggers; the filter goes on afterwards.
    logging.getLogger("uvicorn.error").addFilter(_QuietSimulatedFailures())
    uvicorn.Server(config).run()


if __name__ == "__main__":
    run()

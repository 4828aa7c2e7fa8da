from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn

from embedded import free_port
from workers.simulator import create_simulator_app

KEY = "org-1"
GOOGLE_TOKEN_FORM = {
    "grant_type": "refresh_token",
    "refresh_token": "1//refresh",
    "client_id": "cid",
    "client_secret": "secret",
}
DYNAMICS_TOKEN_FORM = {
    "grant_type": "client_credentials",
    "client_id": "cid",
    "client_secret": "secret",
    "scope": "https://api.businesscentral.dynamics.com/.default",
}
BEARER = {"Authorization": "Bearer xoxb-123"}
# Tokens the simulator never issued: accepted in mode ok, refused in expired_token.
STALE_GOOGLE_TOKEN = "ya29.stale"
STALE_AAD_TOKEN = "aad.stale"

Call = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_simulator_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield client


@pytest.fixture
async def live_url() -> AsyncIterator[str]:
    """A real uvicorn server: only a socket can be dropped or left hanging."""
    port = free_port()
    config = uvicorn.Config(create_simulator_app(), port=port, log_level="warning", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # surfaces why the server could not start
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    # Finishing promptly also shows no request is left hanging after its client went away.
    await asyncio.wait_for(task, timeout=5)


async def set_mode(client: httpx.AsyncClient, key: str, mode: str, **params: Any) -> None:
    response = await client.put(f"/_control/{key}", json={"mode": mode, **params})
    assert response.status_code == 200, response.text


async def requests_of(client: httpx.AsyncClient, key: str) -> dict[str, int]:
    counts: dict[str, int] = (await client.get(f"/_control/{key}")).json()["requests"]
    return counts


# One call per provider route, as the adapters make it.


async def slack(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post(f"/{key}/slack/api/auth.test", headers=BEARER)


async def gmail(
    client: httpx.AsyncClient, key: str, token: str = STALE_GOOGLE_TOKEN
) -> httpx.Response:
    return await client.get(
        f"/{key}/google/gmail/v1/users/me/messages",
        params={"maxResults": 1},
        headers={"Authorization": f"Bearer {token}"},
    )


async def calendar(
    client: httpx.AsyncClient, key: str, token: str = STALE_GOOGLE_TOKEN
) -> httpx.Response:
    return await client.get(
        f"/{key}/google/calendar/v3/calendars/primary/events",
        params={"maxResults": 1},
        headers={"Authorization": f"Bearer {token}"},
    )


async def google_token(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post(f"/{key}/google/token", data=GOOGLE_TOKEN_FORM)


async def xledger(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post(
        f"/{key}/xledger/graphql",
        json={"query": "{ __typename }"},
        headers={"Authorization": "token api-token"},
    )


async def dynamics_token(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post(
        f"/{key}/dynamics/token/tenant-1/oauth2/v2.0/token", data=DYNAMICS_TOKEN_FORM
    )


async def dynamics(
    client: httpx.AsyncClient, key: str, token: str = STALE_AAD_TOKEN
) -> httpx.Response:
    return await client.get(
        f"/{key}/dynamics/v2.0/tenant-1/production/api/v2.0/companies",
        params={"$top": 1},
        headers={"Authorization": f"Bearer {token}"},
    )


async def http_get(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.get(f"/{key}/http/status")


PROVIDER_CALLS: list[Call] = [slack, gmail, calendar, xledger, dynamics, http_get]
GOOGLE_UNAUTHENTICATED = {
    "error": {
        "code": 401,
        "message": "Request had invalid authentication credentials.",
        "status": "UNAUTHENTICATED",
    }
}


# --- ok --------------------------------------------------------------------------------------


async def test_slack_auth_test_answers_identity_and_granted_scopes(
    client: httpx.AsyncClient,
) -> None:
    response = await slack(client, KEY)

    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "url": "https://sim.slack.com/",
        "team": "Sim",
        "user": "ihm-bot",
        "team_id": "T1",
        "user_id": "U1",
    }
    assert response.headers["X-OAuth-Scopes"] == "chat:write,channels:read,users:read"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic x"}]
)
async def test_slack_without_bearer_token_is_not_authed(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post(f"/{KEY}/slack/api/auth.test", headers=headers)

    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": "not_authed"}


async def test_gmail_lists_one_message(client: httpx.AsyncClient) -> None:
    response = await gmail(client, KEY)

    assert response.status_code == 200
    assert response.json() == {
        "messages": [{"id": "m1", "threadId": "t1"}],
        "resultSizeEstimate": 1,
    }


async def test_calendar_lists_primary_events_as_owner(client: httpx.AsyncClient) -> None:
    response = await calendar(client, KEY)

    assert response.status_code == 200
    assert response.json() == {"kind": "calendar#events", "accessRole": "owner", "items": []}


async def test_google_api_without_bearer_token_is_unauthenticated(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"/{KEY}/google/gmail/v1/users/me/messages")

    assert response.status_code == 401
    assert response.json() == GOOGLE_UNAUTHENTICATED


async def test_google_token_endpoint_issues_a_new_access_token_each_time(
    client: httpx.AsyncClient,
) -> None:
    first = await google_token(client, KEY)
    second = await google_token(client, KEY)

    assert first.status_code == 200
    body = first.json()
    assert body["expires_in"] == 3599
    assert body["token_type"] == "Bearer"
    assert body["scope"]
    assert body["access_token"] != second.json()["access_token"]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({**GOOGLE_TOKEN_FORM, "grant_type": "password"}, "unsupported_grant_type"),
        ({k: v for k, v in GOOGLE_TOKEN_FORM.items() if k != "refresh_token"}, "invalid_request"),
    ],
)
async def test_google_token_endpoint_rejects_incomplete_requests(
    client: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    response = await client.post(f"/{KEY}/google/token", data=form)

    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_xledger_answers_any_graphql_query(client: httpx.AsyncClient) -> None:
    response = await xledger(client, KEY)

    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_xledger_rejects_a_body_without_query(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/{KEY}/xledger/graphql", content=b"nope", headers={"Authorization": "token t"}
    )

    assert response.status_code == 400
    assert "errors" in response.json()


async def test_xledger_without_token_header_is_unauthorized(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/{KEY}/xledger/graphql", json={"query": "{ __typename }"}, headers=BEARER
    )

    assert response.status_code == 401


async def test_dynamics_client_credentials_token_opens_the_companies_api(
    client: httpx.AsyncClient,
) -> None:
    token = await dynamics_token(client, KEY)
    assert token.status_code == 200
    assert token.json()["expires_in"] == 3599
    assert token.json()["token_type"] == "Bearer"

    response = await dynamics(client, KEY, token.json()["access_token"])

    assert response.status_code == 200
    assert response.json() == {"value": [{"id": "c1", "name": "CRONUS"}]}


async def test_dynamics_token_endpoint_requires_scope(client: httpx.AsyncClient) -> None:
    form = {k: v for k, v in DYNAMICS_TOKEN_FORM.items() if k != "scope"}

    response = await client.post(f"/{KEY}/dynamics/token/t/oauth2/v2.0/token", data=form)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "'scope'" in response.json()["error_description"]


@pytest.mark.parametrize("path", [f"/{KEY}/http", f"/{KEY}/http/deep/path"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_generic_http_answers_ok_on_any_path(
    client: httpx.AsyncClient, path: str, method: str
) -> None:
    response = await client.request(method, path)

    assert response.status_code == 200
    if method == "GET":
        assert response.text == "ok"


# --- credential modes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "status", "body"),
    [
        (slack, 200, {"ok": False, "error": "invalid_auth"}),
        (gmail, 401, GOOGLE_UNAUTHENTICATED),
        (calendar, 401, GOOGLE_UNAUTHENTICATED),
        (xledger, 401, {"errors": [{"message": "Invalid or expired token"}]}),
        (
            dynamics_token,
            401,
            {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.",
            },
        ),
        (dynamics, 401, None),
        (http_get, 401, None),
    ],
)
async def test_auth_mode_rejects_credentials_in_each_providers_way(
    client: httpx.AsyncClient, call: Call, status: int, body: dict[str, Any] | None
) -> None:
    await set_mode(client, KEY, "auth")

    response = await call(client, KEY)

    assert response.status_code == status
    if body is not None:
        assert response.json() == body


async def test_auth_mode_tells_google_clients_the_token_is_invalid(
    client: httpx.AsyncClient,
) -> None:
    await set_mode(client, KEY, "auth")

    response = await gmail(client, KEY)

    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_auth_mode_rejects_even_freshly_issued_google_tokens(
    client: httpx.AsyncClient,
) -> None:
    await set_mode(client, KEY, "auth")
    token = (await google_token(client, KEY)).json()["access_token"]

    response = await gmail(client, KEY, token)

    assert response.status_code == 401


async def test_token_revoked_is_reported_by_slack_and_is_auth_elsewhere(
    client: httpx.AsyncClient,
) -> None:
    await set_mode(client, KEY, "token_revoked")

    slack_response = await slack(client, KEY)
    xledger_response = await xledger(client, KEY)

    assert slack_response.json() == {"ok": False, "error": "token_revoked"}
    assert xledger_response.status_code == 401


@pytest.mark.parametrize("api", [gmail, calendar])
async def test_expired_token_accepts_only_a_token_refreshed_by_the_key(
    client: httpx.AsyncClient, api: Callable[..., Awaitable[httpx.Response]]
) -> None:
    await set_mode(client, KEY, "expired_token")

    stale = await api(client, KEY, STALE_GOOGLE_TOKEN)
    refreshed = await google_token(client, KEY)
    retried = await api(client, KEY, refreshed.json()["access_token"])

    assert stale.status_code == 401
    assert stale.json() == GOOGLE_UNAUTHENTICATED
    assert refreshed.status_code == 200
    assert retried.status_code == 200


async def test_expired_token_does_not_accept_tokens_issued_for_another_key(
    client: httpx.AsyncClient,
) -> None:
    await set_mode(client, KEY, "expired_token")
    foreign = (await google_token(client, "org-2")).json()["access_token"]

    response = await gmail(client, KEY, foreign)

    assert response.status_code == 401


async def test_expired_token_lets_dynamics_clients_fetch_a_new_token(
    client: httpx.AsyncClient,
) -> None:
    await set_mode(client, KEY, "expired_token")

    cached = await dynamics(client, KEY, STALE_AAD_TOKEN)
    token = (await dynamics_token(client, KEY)).json()["access_token"]
    retried = await dynamics(client, KEY, token)

    assert cached.status_code == 401
    assert retried.status_code == 200


async def test_invalid_grant_fails_both_the_api_and_the_refresh(
    client: httpx.AsyncClient,
) -> None:
    await set_mode(client, KEY, "invalid_grant")

    api = await gmail(client, KEY)
    refresh = await google_token(client, KEY)

    assert api.status_code == 401
    assert api.json() == GOOGLE_UNAUTHENTICATED
    assert refresh.status_code == 400
    assert refresh.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }


# --- missing_scope ---------------------------------------------------------------------------


async def test_missing_scope_narrows_slack_granted_scopes(client: httpx.AsyncClient) -> None:
    await set_mode(client, KEY, "missing_scope")

    response = await slack(client, KEY)

    assert response.json()["ok"] is True
    assert response.headers["X-OAuth-Scopes"] == "users:read"


async def test_missing_scope_makes_calendar_read_only(client: httpx.AsyncClient) -> None:
    await set_mode(client, KEY, "missing_scope")

    response = await calendar(client, KEY)

    assert response.status_code == 200
    assert response.json()["accessRole"] == "reader"


async def test_missing_scope_forbids_gmail_and_dynamics(client: httpx.AsyncClient) -> None:
    await set_mode(client, KEY, "missing_scope")

    gmail_response = await gmail(client, KEY)
    dynamics_response = await dynamics(client, KEY)

    assert gmail_response.status_code == 403
    assert gmail_response.json()["error"]["status"] == "PERMISSION_DENIED"
    assert dynamics_response.status_code == 403
    assert dynamics_response.json()["error"]["code"] == "Authorization_RequestDenied"


async def test_missing_scope_leaves_xledger_healthy(client: httpx.AsyncClient) -> None:
    await set_mode(client, KEY, "missing_scope")

    response = await xledger(client, KEY)

    assert response.status_code == 200


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("call", PROVIDER_CALLS)
async def test_rate_limited_answers_429_with_default_retry_after(
    client: httpx.AsyncClient, call: Call
) -> None:
    await set_mode(client, KEY, "rate_limited")

    response = await call(client, KEY)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"


async def test_rate_limited_uses_provider_bodies_and_given_retry_after(
    client: httpx.AsyncClient,
) -> None:
    await set_mode(client, KEY, "rate_limited", retryAfter=7)

    slack_response = await slack(client, KEY)
    gmail_response = await gmail(client, KEY)

    assert slack_response.headers["Retry-After"] == "7"
    assert slack_response.json() == {"ok": False, "error": "ratelimited"}
    assert gmail_response.json() == {
        "error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded"}
    }


@pytest.mark.parametrize(("params", "status"), [({}, 500), ({"status": 503}, 503)])
@pytest.mark.parametrize("call", PROVIDER_CALLS)
async def test_server_error_answers_the_chosen_status(
    client: httpx.AsyncClient, call: Call, params: dict[str, int], status: int
) -> None:
    await set_mode(client, KEY, "server_error", **params)

    response = await call(client, KEY)

    assert response.status_code == status
    assert response.content


@pytest.mark.parametrize("call", PROVIDER_CALLS)
async def test_malformed_answers_json_content_type_with_a_body_that_is_not_json(
    client: httpx.AsyncClient, call: Call
) -> None:
    await set_mode(client, KEY, "malformed")

    response = await call(client, KEY)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        response.json()


async def test_not_found_answers_404(client: httpx.AsyncClient) -> None:
    await set_mode(client, KEY, "not_found")

    response = await dynamics(client, KEY)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


@pytest.mark.parametrize("mode", ["server_error", "rate_limited", "malformed", "not_found"])
@pytest.mark.parametrize("token_call", [google_token, dynamics_token])
async def test_token_endpoints_keep_working_in_api_failure_modes(
    client: httpx.AsyncClient, mode: str, token_call: Call
) -> None:
    await set_mode(client, KEY, mode)

    response = await token_call(client, KEY)

    assert response.status_code == 200
    assert response.json()["access_token"]


@pytest.mark.parametrize("call", [slack, google_token, http_get])
async def test_slow_delays_then_answers_normally(client: httpx.AsyncClient, call: Call) -> None:
    await set_mode(client, KEY, "slow", ms=200)

    started = time.monotonic()
    response = await call(client, KEY)
    elapsed = time.monotonic() - started

    assert elapsed >= 0.2
    assert response.status_code == 200


async def test_drop_closes_the_connection_mid_response(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=2) as client:
        await set_mode(client, KEY, "drop")

        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await slack(client, KEY)


async def test_hang_never_answers_and_ends_when_the_client_gives_up(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=0.5) as client:
        await set_mode(client, KEY, "hang")

        with pytest.raises(httpx.TimeoutException):
            await gmail(client, KEY)
    # The fixture then stops the server within seconds, which it could not if the request
    # were still sleeping.


# --- control API -----------------------------------------------------------------------------


async def test_healthz_answers_for_readiness_polling(client: httpx.AsyncClient) -> None:
    response = await client.get("/_control/healthz")

    assert response.status_code == 200


async def test_an_unused_key_is_ok_with_no_requests(client: httpx.AsyncClient) -> None:
    response = await client.get("/_control/fresh")

    assert response.json() == {
        "mode": "ok",
        "params": {},
        "requests": {
            "slack.auth_test": 0,
            "gmail.messages": 0,
            "calendar.events": 0,
            "google.token": 0,
            "xledger.graphql": 0,
            "dynamics.token": 0,
            "dynamics.companies": 0,
            "http": 0,
        },
    }


async def test_control_reports_mode_with_defaulted_params(client: httpx.AsyncClient) -> None:
    await set_mode(client, KEY, "rate_limited")

    state = (await client.get(f"/_control/{KEY}")).json()

    assert state["mode"] == "rate_limited"
    assert state["params"] == {"retryAfter": 30}


async def test_every_request_counts_including_failures(client: httpx.AsyncClient) -> None:
    await slack(client, KEY)
    await set_mode(client, KEY, "server_error")
    await slack(client, KEY)
    await gmail(client, KEY)
    await client.get(f"/{KEY}/http")
    await http_get(client, KEY)

    counts = await requests_of(client, KEY)

    assert counts["slack.auth_test"] == 2
    assert counts["gmail.messages"] == 1
    assert counts["http"] == 2
    assert counts["google.token"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "sideways"},
        {},
        {"mode": 3},
        {"mode": "slow"},
        {"mode": "slow", "ms": "100"},
        {"mode": "slow", "ms": True},
        {"mode": "slow", "ms": -1},
        {"mode": "server_error", "status": 404},
        {"mode": "rate_limited", "retry_after": 5},
        {"mode": "ok", "ms": 5},
        ["ok"],
    ],
)
async def test_bad_control_input_is_rejected_with_a_reason(
    client: httpx.AsyncClient, body: Any
) -> None:
    response = await client.put(f"/_control/{KEY}", json=body)

    assert response.status_code == 400
    assert response.json()["error"]
    assert (await client.get(f"/_control/{KEY}")).json()["mode"] == "ok"


async def test_control_body_that_is_not_json_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.put(f"/_control/{KEY}", content=b"{mode")

    assert response.status_code == 400
    assert response.json() == {"error": "body is not JSON"}


async def test_keys_fail_independently(client: httpx.AsyncClient) -> None:
    await set_mode(client, "org-a", "auth")

    failing = await slack(client, "org-a")
    healthy = await slack(client, "org-b")

    assert failing.json()["ok"] is False
    assert healthy.json()["ok"] is True
    assert (await requests_of(client, "org-a"))["slack.auth_test"] == 1
    assert (await requests_of(client, "org-b"))["slack.auth_test"] == 1


async def test_deleting_a_key_resets_only_that_key(client: httpx.AsyncClient) -> None:
    await set_mode(client, "org-a", "auth")
    await set_mode(client, "org-b", "auth")
    await slack(client, "org-a")

    response = await client.delete("/_control/org-a")

    assert response.status_code == 204
    assert (await client.get("/_control/org-a")).json()["mode"] == "ok"
    assert (await requests_of(client, "org-a"))["slack.auth_test"] == 0
    assert (await client.get("/_control/org-b")).json()["mode"] == "auth"


async def test_deleting_all_keys_resets_modes_and_counters(client: httpx.AsyncClient) -> None:
    await set_mode(client, "org-a", "auth")
    await slack(client, "org-b")

    response = await client.delete("/_control")

    assert response.status_code == 204
    assert (await client.get("/_control/org-a")).json()["mode"] == "ok"
    assert (await requests_of(client, "org-b"))["slack.auth_test"] == 0
    assert (await slack(client, "org-a")).json()["ok"] is True


async def test_each_app_starts_with_fresh_state(client: httpx.AsyncClient) -> None:
    await set_mode(client, KEY, "auth")
    transport = httpx.ASGITransport(app=create_simulator_app())

    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as other:
        response = await slack(other, KEY)

    assert response.json()["ok"] is True

"""Business Central: a cached client-credentials token, then `companies?$top=1`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.workers.checks.fakes import (
    ORG_ID,
    TRANSPORT_FAILURES,
    Handler,
    Harness,
    answer,
    assert_failed,
    assert_no_secrets,
    form,
    slowly,
)
from workers.checks.config import Dynamics365Config, parse_config
from workers.checks.dynamics365 import Dynamics365Check
from workers.checks.result import ErrorCategory, HealthResult, RecoveryAction, Status

TENANT = "contoso.onmicrosoft.com"
CREDENTIALS = {"clientId": "6731de76-14a6-49ae-97bc-6eba6914391e", "clientSecret": "bc~secret"}
TOKEN_URL = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
COMPANIES_URL = (
    f"https://api.businesscentral.dynamics.com/v2.0/{TENANT}/production/api/v2.0/companies?$top=1"
)
COMPANIES = {"value": [{"id": "c0ffee", "name": "CRONUS"}]}
NOT_FOUND_TENANT = {
    "error": "invalid_request",
    "error_description": f"AADSTS90002: Tenant '{TENANT}' not found.",
    "error_codes": [90002],
}


class FakeBusinessCentral:
    """Entra's token endpoint issuing numbered tokens, and an API accepting only live ones."""

    def __init__(self, api: Handler | None = None, token: Handler | None = None) -> None:
        self.api = api or answer(200, COMPANIES)
        self.token = token
        self.expires_in: Any = 3599
        self.live: set[str] = set()
        self.issued = 0

    def __call__(self, request: httpx.Request) -> Any:
        if request.url.path.endswith("/token"):
            if self.token is not None:
                return self.token(request)
            self.issued += 1
            token = f"bc-access-{self.issued}"
            self.live.add(token)
            body = {"token_type": "Bearer", "access_token": token}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return httpx.Response(200, json=body)
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.live:
            return httpx.Response(
                401, json={"error": {"code": "Authentication_InvalidCredentials"}}
            )
        return self.api(request)

    def revoke_all(self) -> None:
        self.live.clear()


def config(**overrides: Any) -> Dynamics365Config:
    return Dynamics365Config(**{"tenant_id": TENANT, "environment": "production", **overrides})


async def check(harness: Harness, cfg: Dynamics365Config | None = None) -> HealthResult:
    return await Dynamics365Check(harness.ctx).check(ORG_ID, cfg or config())


def token_requests(harness: Harness) -> list[httpx.Request]:
    return harness.requests_to("/token")


def secrets() -> tuple[str, ...]:
    return (CREDENTIALS["clientSecret"], "bc-access-1", "bc-access-2")


@pytest.fixture(autouse=True)
def stored_credentials(harness: Harness) -> None:
    harness.vault.put("dynamics365", CREDENTIALS)


# -- healthy and the token cache ------------------------------------------------------


async def test_token_then_one_company_is_healthy(harness: Harness) -> None:
    harness.serve(FakeBusinessCentral())

    result = await check(harness)

    assert result.status is Status.HEALTHY
    token_request, api_request = harness.requests
    assert str(token_request.url) == TOKEN_URL
    assert form(token_request) == {
        "grant_type": "client_credentials",
        "client_id": CREDENTIALS["clientId"],
        "client_secret": CREDENTIALS["clientSecret"],
        "scope": "https://api.businesscentral.dynamics.com/.default",
    }
    assert str(api_request.url) == COMPANIES_URL
    assert api_request.url.params["$top"] == "1"
    assert api_request.headers["authorization"] == "Bearer bc-access-1"


async def test_many_checks_share_one_token(harness: Harness) -> None:
    harness.serve(FakeBusinessCentral())

    results = [await check(harness) for _ in range(5)]

    assert {r.status for r in results} == {Status.HEALTHY}
    assert len(token_requests(harness)) == 1
    assert len(harness.requests_to("/companies")) == 5


async def test_token_is_fetched_again_shortly_before_it_expires(harness: Harness) -> None:
    harness.serve(FakeBusinessCentral())
    await check(harness)

    harness.clock.advance(3599 - 120)
    await check(harness)
    assert len(token_requests(harness)) == 1

    harness.clock.advance(90)  # within the cache's margin of the expiry
    result = await check(harness)

    assert result.status is Status.HEALTHY
    assert len(token_requests(harness)) == 2
    assert harness.requests[-1].headers["authorization"] == "Bearer bc-access-2"


@pytest.mark.parametrize(
    ("expires_in", "token_requests_for_two_checks"),
    [("3599", 1), (None, 2), ("soon", 2), (0, 2)],
    ids=["string", "missing", "garbage", "zero"],
)
async def test_token_lifetime_decides_caching(
    harness: Harness, expires_in: Any, token_requests_for_two_checks: int
) -> None:
    fake = FakeBusinessCentral()
    fake.expires_in = expires_in
    harness.serve(fake)

    await check(harness)
    result = await check(harness)

    assert result.status is Status.HEALTHY
    assert len(token_requests(harness)) == token_requests_for_two_checks


async def test_cached_token_refused_early_is_replaced_once(harness: Harness) -> None:
    fake = FakeBusinessCentral()
    harness.serve(fake)
    await check(harness)
    fake.revoke_all()

    result = await check(harness)

    assert result.status is Status.HEALTHY
    assert len(token_requests(harness)) == 2
    assert harness.requests[-1].headers["authorization"] == "Bearer bc-access-2"


# -- credentials and configuration rejected -----------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "invalid_client"), (400, "invalid_client"), (400, "unauthorized_client")],
)
async def test_auth_error_marks_integration_unreachable(
    harness: Harness, status: int, code: str
) -> None:
    refused = {
        "error": code,
        "error_description": f"AADSTS7000215: Invalid client secret {CREDENTIALS['clientSecret']}",
    }
    harness.serve(FakeBusinessCentral(token=answer(status, refused)))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS)
    assert "client ID or secret" in result.error.guidance  # type: ignore[union-attr]
    assert code in result.error.message  # type: ignore[union-attr]
    assert_no_secrets(result, *secrets())
    assert harness.requests_to("/companies") == []


async def test_api_refusing_a_fresh_token_is_an_auth_error(harness: Harness) -> None:
    harness.serve(FakeBusinessCentral(api=answer(401, {"error": {"code": "Unauthorized"}})))

    first = await check(harness)
    second = await check(harness)

    assert_failed(first, Status.UNREACHABLE, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS)
    assert_no_secrets(first, *secrets())
    assert second.status is Status.UNREACHABLE
    # One token per check: the refused token is dropped from the cache, never retried.
    assert len(token_requests(harness)) == 2
    assert len(harness.requests_to("/companies")) == 2


@pytest.mark.parametrize(
    "body",
    [
        NOT_FOUND_TENANT,
        {"error": "invalid_request", "error_codes": [900023]},
        {"error": "invalid_request", "error_description": "Tenant not valid"},
    ],
    ids=["AADSTS90002", "AADSTS900023", "description"],
)
async def test_unknown_tenant_is_a_configuration_error(
    harness: Harness, body: dict[str, Any]
) -> None:
    harness.serve(FakeBusinessCentral(token=answer(400, body)))

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.FIX_CONFIGURATION
    )
    assert TENANT in result.error.message  # type: ignore[union-attr]


async def test_unknown_environment_is_a_configuration_error(harness: Harness) -> None:
    harness.serve(FakeBusinessCentral(api=answer(404, {"error": {"code": "NoEnvironment"}})))

    result = await check(harness, config(environment="sandbox-2"))

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.FIX_CONFIGURATION
    )
    assert "sandbox-2" in result.error.message  # type: ignore[union-attr]


async def test_invalid_scope_is_a_configuration_error(harness: Harness) -> None:
    harness.serve(FakeBusinessCentral(token=answer(400, {"error": "invalid_scope"})))

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.FIX_CONFIGURATION
    )


@pytest.mark.parametrize(
    "body",
    [
        {"error": "unsupported_grant_type"},
        {"error": "invalid_request", "error_codes": ["x", 1]},
        b"<html>Bad Request</html>",
    ],
    ids=["other-code", "invalid-request", "no-code"],
)
async def test_other_token_refusal_is_a_permanent_provider_error(
    harness: Harness, body: Any
) -> None:
    harness.serve(FakeBusinessCentral(token=answer(400, body)))

    result = await check(harness)

    assert_failed(result, Status.UNREACHABLE, ErrorCategory.PROVIDER_ERROR, transient=False)


@pytest.mark.parametrize(
    "credentials",
    [None, {"clientId": CREDENTIALS["clientId"]}],
    ids=["none-stored", "no-secret"],
)
async def test_missing_credentials_is_a_configuration_error(
    harness: Harness, credentials: dict[str, str] | None
) -> None:
    harness.vault.stored.clear()
    if credentials is not None:
        harness.vault.put("dynamics365", credentials)

    result = await check(harness)

    assert_failed(
        result, Status.UNREACHABLE, ErrorCategory.CONFIGURATION, RecoveryAction.UPDATE_CREDENTIALS
    )
    assert harness.requests == []


async def test_missing_api_permission_is_degraded(harness: Harness) -> None:
    harness.serve(FakeBusinessCentral(api=answer(403, {"error": {"code": "Forbidden"}})))

    result = await check(harness)

    assert_failed(result, Status.DEGRADED, ErrorCategory.AUTH, RecoveryAction.UPDATE_CREDENTIALS)
    assert "permission" in result.error.message  # type: ignore[union-attr]


# -- limits, provider errors, transport -----------------------------------------------


@pytest.mark.parametrize("endpoint", ["api", "token"])
async def test_rate_limit_is_degraded_with_retry_after(harness: Harness, endpoint: str) -> None:
    limited = answer(429, {}, **{"Retry-After": "30"})
    harness.serve(FakeBusinessCentral(**{endpoint: limited}))

    result = await check(harness)

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.RATE_LIMITED, RecoveryAction.WAIT_AND_RETRY
    )
    assert result.error is not None and result.error.retry_after_seconds == 30.0


@pytest.mark.parametrize("endpoint", ["api", "token"])
async def test_server_error_is_unreachable_and_transient(harness: Harness, endpoint: str) -> None:
    harness.serve(FakeBusinessCentral(**{endpoint: answer(503, b"<html>down</html>")}))

    result = await check(harness)

    assert_failed(
        result,
        Status.UNREACHABLE,
        ErrorCategory.PROVIDER_ERROR,
        RecoveryAction.CHECK_PROVIDER_STATUS,
        transient=True,
    )


@pytest.mark.parametrize(
    "fake",
    [
        FakeBusinessCentral(api=answer(200, b"<html>sign in</html>")),
        FakeBusinessCentral(api=answer(200, {"companies": []})),
        FakeBusinessCentral(token=answer(200, {"token_type": "Bearer"})),
        FakeBusinessCentral(token=answer(200, b"<html>sign in</html>")),
    ],
    ids=["api-html", "api-no-value", "token-without-access-token", "token-html"],
)
async def test_malformed_body_is_a_provider_error(
    harness: Harness, fake: FakeBusinessCentral
) -> None:
    harness.serve(fake)

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
    assert_no_secrets(result, *secrets())


async def test_slow_answer_is_degraded(harness: Harness) -> None:
    harness.serve(FakeBusinessCentral(api=slowly(answer(200, COMPANIES))))

    result = await check(harness, config(degraded_latency_ms=5))

    assert_failed(
        result, Status.DEGRADED, ErrorCategory.PROVIDER_ERROR, RecoveryAction.WAIT_AND_RETRY
    )


async def test_base_url_and_token_url_overrides_are_used(harness: Harness) -> None:
    harness.serve(FakeBusinessCentral())
    cfg = parse_config(
        "dynamics365",
        {
            "tenantId": TENANT,
            "environment": "production",
            "baseUrl": "https://bc.sovereign.test",
            "tokenUrl": "https://login.sovereign.test/oauth2/token",
        },
    )

    result = await check(harness, cfg)  # type: ignore[arg-type]

    assert result.status is Status.HEALTHY
    assert [str(r.url) for r in harness.requests] == [
        "https://login.sovereign.test/oauth2/token",
        f"https://bc.sovereign.test/v2.0/{TENANT}/production/api/v2.0/companies?$top=1",
    ]

"""Re-authorizing an OAuth integration: the link, the callback, the stored tokens."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse
from uuid import UUID, uuid4

import pytest

from db import credentials
from db.scope import as_service
from db.vault import Vault
from resolvers.recovery import sign_state
from tests.schema.conftest import VAULT_KEY, Api, error_codes

START = """mutation($t: String!, $r: String!) {
  startReauthorization(integrationType: $t, redirectUri: $r) {
    authorizationUrl state expiresAt } }"""
REDIRECT = "http://localhost:8000/oauth/callback"


async def _gmail(api: Api, admin: str, simulator_url: str, key: str) -> None:
    saved = await api.gql(
        "mutation($i: IntegrationInput!) { upsertIntegration(input: $i) { id } }",
        {
            "i": {
                "integrationType": "gmail",
                "config": {
                    "baseUrl": f"{simulator_url}/{key}/google",
                    "tokenUrl": f"{simulator_url}/{key}/google/token",
                },
            }
        },
        as_=admin,
    )
    assert "errors" not in saved, saved
    stored = await api.gql(
        'mutation($c: JSON!) { setIntegrationCredentials(integrationType: "gmail", '
        "credentials: $c) { hasCredentials } }",
        {"c": {"refreshToken": "old-refresh", "clientId": "client-123", "clientSecret": "s3"}},
        as_=admin,
    )
    assert "errors" not in stored, stored


@pytest.fixture
def key() -> str:
    return uuid4().hex


async def test_the_link_names_the_client_and_the_callback_stores_fresh_tokens(
    api: Api,
    tokens: Callable[..., str],
    simulator_url: str,
    key: str,
    org_a: UUID,
    pool: object,
) -> None:
    admin = tokens("org_admin")
    await _gmail(api, admin, simulator_url, key)

    link = (await api.gql(START, {"t": "gmail", "r": REDIRECT}, as_=admin))["data"][
        "startReauthorization"
    ]
    query = parse_qs(urlparse(link["authorizationUrl"]).query)
    assert urlparse(link["authorizationUrl"]).netloc == "accounts.google.com"
    assert query["client_id"] == ["client-123"]
    assert query["redirect_uri"] == [REDIRECT]
    assert query["access_type"] == ["offline"]
    assert query["state"] == [link["state"]]
    assert "s3" not in link["authorizationUrl"]

    back = await api.client.get("/oauth/callback", params={"state": link["state"], "code": "c1"})

    assert back.status_code == 200, back.text
    assert "Reconnected" in back.text
    async with as_service(pool) as conn:  # type: ignore[arg-type]
        secret = await credentials.load(
            conn,
            Vault([("k1", base64.b64decode(VAULT_KEY))]),
            org_id=org_a,
            integration_type="gmail",
        )
    assert secret is not None
    assert secret["refreshToken"] == "1//sim-refresh-c1"
    assert secret["accessToken"].startswith("ya29.sim-")
    assert secret["clientSecret"] == "s3"
    queued = await api.app.state.services.queue.queued_jobs()
    assert [(j.function, j.args) for j in queued] == [("check_integration", (str(org_a), "gmail"))]
    audit = await api.gql("{ auditEvents { edges { node { action details } } } }", as_=admin)
    actions = [e["node"]["action"] for e in audit["data"]["auditEvents"]["edges"]]
    assert "completeReauthorization" in actions


async def test_a_tampered_or_expired_state_and_a_refused_code_change_nothing(
    api: Api,
    tokens: Callable[..., str],
    simulator_url: str,
    key: str,
    org_a: UUID,
) -> None:
    admin = tokens("org_admin")
    await _gmail(api, admin, simulator_url, key)
    link = (await api.gql(START, {"t": "gmail", "r": REDIRECT}, as_=admin))["data"][
        "startReauthorization"
    ]
    settings = api.app.state.services.settings
    expired = sign_state(
        settings,
        {
            "org": str(org_a),
            "type": "gmail",
            "redirect_uri": REDIRECT,
            "sub": "a",
            "role": "org_admin",
        },
        datetime.now(UTC) - timedelta(hours=1),
    )
    tampered = link["state"][:-3] + ("AAA" if not link["state"].endswith("AAA") else "BBB")

    answers = [
        await api.client.get("/oauth/callback", params={"state": tampered, "code": "c"}),
        await api.client.get("/oauth/callback", params={"state": expired, "code": "c"}),
        await api.client.get("/oauth/callback", params={"state": link["state"], "code": "bad"}),
        await api.client.get("/oauth/callback", params={"error": "access_denied"}),
        await api.client.get("/oauth/callback"),
    ]

    assert [a.status_code for a in answers] == [400, 400, 400, 400, 400]
    assert "expired" in answers[0].text and "expired" in answers[1].text
    assert "refused" in answers[2].text
    assert await api.app.state.services.queue.queued_jobs() == []


async def test_reauthorization_is_refused_for_non_oauth_types_bad_redirects_and_members(
    api: Api, tokens: Callable[..., str], simulator_url: str, key: str
) -> None:
    admin = tokens("org_admin")
    await _gmail(api, admin, simulator_url, key)

    xledger = await api.gql(START, {"t": "xledger", "r": REDIRECT}, as_=admin)
    ftp = await api.gql(START, {"t": "gmail", "r": "ftp://example.com/cb"}, as_=admin)
    plain_http = await api.gql(START, {"t": "gmail", "r": "http://example.com/cb"}, as_=admin)
    member = await api.gql(START, {"t": "gmail", "r": REDIRECT}, as_=tokens("member"))

    assert error_codes(xledger) == ["BAD_USER_INPUT"]
    assert error_codes(ftp) == ["BAD_USER_INPUT"]
    assert error_codes(plain_http) == ["BAD_USER_INPUT"]
    assert error_codes(member) == ["FORBIDDEN"]

"""Configuring integrations and reading health over GraphQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

from resolvers.tokens import mint_token
from tests.schema.conftest import SECRET, Api, error_codes

UPSERT = """
mutation($input: IntegrationInput!) {
  upsertIntegration(input: $input) {
    id orgId enabled monitoringMode checkIntervalSeconds config hasCredentials
    type { key displayName minIntervalSeconds }
    health { status connectionState displayName checkedAt }
  }
}
"""
ORG_HEALTH = """
query { orgHealth { integrationType displayName status connectionState error { category }
  history { status } trend { window bucketSeconds checks uptimeRatio buckets { checks } }
  activeAlerts { id } } }
"""


async def test_a_new_integration_is_listed_as_pending_with_its_display_name(
    api: Api, tokens: Callable[..., str], org_a: UUID
) -> None:
    saved = await api.gql(
        UPSERT,
        {"input": {"integrationType": "xledger", "config": {"baseUrl": "https://x.test"}}},
        as_=tokens("org_admin"),
    )

    assert "errors" not in saved, saved
    integration = saved["data"]["upsertIntegration"]
    assert integration["orgId"] == str(org_a)
    assert integration["checkIntervalSeconds"] == 900
    assert integration["config"] == {"baseUrl": "https://x.test"}
    assert integration["hasCredentials"] is False
    assert integration["health"]["status"] == "UNKNOWN"
    assert integration["health"]["connectionState"] == "PENDING"

    listed = await api.gql(ORG_HEALTH, as_=tokens("member"))

    (row,) = listed["data"]["orgHealth"]
    assert row["displayName"] == "Xledger"
    assert row["status"] == "UNKNOWN"
    assert row["error"] is None
    assert row["history"] == []
    assert row["trend"]["bucketSeconds"] == 900
    assert row["trend"]["checks"] == 0
    assert row["trend"]["uptimeRatio"] is None
    assert len(row["trend"]["buckets"]) in (96, 97)


async def test_bad_integration_input_names_the_field_and_changes_nothing(
    api: Api, tokens: Callable[..., str]
) -> None:
    admin = tokens("org_admin")
    cases = {
        "integrationType": {"integrationType": "teams"},
        "checkIntervalSeconds": {"integrationType": "xledger", "checkIntervalSeconds": 60},
        "config.url": {"integrationType": "http", "config": {"url": "nope"}},
        "config.tenantId": {"integrationType": "dynamics365", "config": {"environment": "p"}},
    }
    for field, payload in cases.items():
        body = await api.gql(UPSERT, {"input": payload}, as_=admin)

        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert body["errors"][0]["extensions"]["field"] == field

    listed = await api.gql("{ integrations { id } }", as_=admin)
    assert listed["data"]["integrations"] == []


async def test_credentials_are_write_only(api: Api, tokens: Callable[..., str]) -> None:
    admin = tokens("org_admin")
    await api.gql(UPSERT, {"input": {"integrationType": "slack"}}, as_=admin)

    saved = await api.gql(
        """mutation($c: JSON!) { setIntegrationCredentials(integrationType: "slack",
             credentials: $c) { hasCredentials config } }""",
        {"c": {"botToken": "xoxb-never-echo-me"}},
        as_=admin,
    )
    bad = await api.gql(
        """mutation($c: JSON!) { setIntegrationCredentials(integrationType: "slack",
             credentials: $c) { hasCredentials } }""",
        {"c": {"token": "xoxb-never-echo-me"}},
        as_=admin,
    )

    assert saved["data"]["setIntegrationCredentials"]["hasCredentials"] is True
    assert "xoxb-never-echo-me" not in str(saved)
    assert error_codes(bad) == ["BAD_USER_INPUT"]
    assert "xoxb-never-echo-me" not in str(bad)


async def test_missing_and_bad_tokens_are_unauthenticated(
    api: Api, tokens: Callable[..., str], org_a: UUID
) -> None:
    expired = mint_token(
        SECRET,
        role="member",
        org_id=org_a,
        sub="late",
        ttl_seconds=60,
        audience="ihm",
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    admin_claim_on_org_audience = jwt.encode(
        {"sub": "x", "role": "global_admin", "aud": "ihm", "exp": 9999999999},
        "t" * 40,
        algorithm="HS256",
    )
    unsigned = jwt.encode(
        {"sub": "x", "role": "member", "org_id": str(org_a), "aud": "ihm", "exp": 9999999999},
        None,
        algorithm="none",
    )
    for credential in (None, "garbage", expired, admin_claim_on_org_audience, unsigned):
        body = await api.gql("{ viewer { userId } }", as_=credential)

        assert error_codes(body) == ["UNAUTHENTICATED"], (credential, body)


async def test_only_global_admins_may_name_another_org(
    api: Api, tokens: Callable[..., str], org_b: UUID
) -> None:
    query = "query($org: UUID) { orgHealth(orgId: $org) { integrationType } }"

    refused = await api.gql(query, {"org": str(org_b)}, as_=tokens("org_admin"))
    allowed = await api.gql(query, {"org": str(org_b)}, as_=tokens("global_admin"))

    assert error_codes(refused) == ["FORBIDDEN"]
    assert allowed["data"]["orgHealth"] == []


async def test_a_malformed_uuid_is_bad_user_input(api: Api, tokens: Callable[..., str]) -> None:
    body = await api.gql(
        "query($org: UUID) { orgHealth(orgId: $org) { integrationType } }",
        {"org": "not-a-uuid"},
        as_=tokens("org_admin"),
    )

    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_global_admins_see_provider_incidents_in_the_summary(
    api: Api, tokens: Callable[..., str], pool: object
) -> None:
    from db.scope import as_service

    async with as_service(pool) as conn:  # type: ignore[arg-type]
        await conn.execute(
            "INSERT INTO provider_incidents (integration_type, orgs_with_provider, "
            "failing_orgs, peak_failing_orgs, opened_at, last_evaluated_at) "
            "VALUES ('xledger', 10, 4, 4, now(), now())"
        )

    body = await api.gql(
        "{ globalHealthSummary { providerIncidents(openOnly: true) { integrationType "
        "displayName open failingOrgs } } }",
        as_=tokens("global_admin"),
    )
    refused = await api.gql(
        "{ globalHealthSummary { providerIncidents { id } } }", as_=tokens("org_admin")
    )

    assert body["data"]["globalHealthSummary"]["providerIncidents"] == [
        {"integrationType": "xledger", "displayName": "Xledger", "open": True, "failingOrgs": 4}
    ]
    assert error_codes(refused) == ["FORBIDDEN"]

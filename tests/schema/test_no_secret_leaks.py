"""Credentials and channel secrets are write-only: nothing a client reads, nor any log, has them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
import structlog

from tests.schema.conftest import Api, error_codes

# type -> (config, credentials). Every value here but the OAuth client ids is a secret
# (a client id is public by design: it travels in the authorization URL).
INTEGRATIONS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "slack": ({}, {"botToken": "xoxb-1111-SLACKBOTSECRET"}),
    "xledger": ({}, {"apiToken": "xl-APITOKEN-2222-SECRET"}),
    "http": ({"url": "https://status.example.com/health"}, {"bearerToken": "HTTPBEARER-3333"}),
    "gmail": (
        {},
        {
            "accessToken": "ya29.GMAILACCESSSECRET",
            "refreshToken": "1//GMAILREFRESHSECRET",
            "clientId": "1234-gmail.apps.googleusercontent.com",
            "clientSecret": "GOCSPX-GMAILCLIENTSECRET",
        },
    ),
    "dynamics365": (
        {"tenantId": "contoso.onmicrosoft.com", "environment": "production"},
        {"clientId": "d365-client-id", "clientSecret": "D365~CLIENTSECRET~5555"},
    ),
}
# kind, target, signing secret
CHANNELS = [
    (
        "WEBHOOK",
        "https://hooks.example.com/services/T0000/B0000/WEBHOOKPATHTOKEN123456?token=QUERYTOKEN789",
        "whsec_WEBHOOKSIGNINGSECRET",
    ),
    ("WEBHOOK", "https://hookuser:USERINFOPASS42@hooks.example.com/alerts", None),
    ("APPRISE", "tgram://123456789:TELEGRAMBOTTOKEN/-100123", None),
    ("APPRISE", "mailto://ops:APPRISEMAILPASSWORD99@mail.example.com", None),
]

SECRETS = sorted(
    {
        value
        for _, credentials in INTEGRATIONS.values()
        for key, value in credentials.items()
        if key != "clientId"
    }
    | {
        "WEBHOOKPATHTOKEN123456",
        "QUERYTOKEN789",
        "whsec_WEBHOOKSIGNINGSECRET",
        "USERINFOPASS42",
        "TELEGRAMBOTTOKEN",
        "APPRISEMAILPASSWORD99",
    }
)

HEALTH_FIELDS = """integrationId orgId integrationType displayName status connectionState
  error { category message guidance recoveryAction docsUrl }
  history { status errorCategory errorMessage } activeAlerts { title message guidance }"""
READ_AS_ORG_ADMIN = f"""
{{
  integrations {{ id config hasCredentials type {{ key }} health {{ {HEALTH_FIELDS} }} }}
  orgHealth {{ {HEALTH_FIELDS} }}
  integrationHealth(integrationType: "gmail") {{ {HEALTH_FIELDS} }}
  notificationChannels {{ id kind target minSeverity enabled }}
  auditEvents(first: 200) {{ edges {{ node {{ actor role action details }} }} }}
  alertRules {{ id integrationType }}
  alerts {{ edges {{ node {{ title message }} }} }}
  notifications {{ edges {{ node {{ title body }} }} }}
}}
"""
READ_AS_GLOBAL_ADMIN = f"""
query($org: UUID) {{
  globalHealthSummary {{
    providers {{ integrationType }} unhealthyIntegrations {{ {HEALTH_FIELDS} }}
  }}
  integrations(orgId: $org) {{ config }}
  notificationChannels(orgId: $org) {{ target }}
  auditEvents(orgId: $org) {{ edges {{ node {{ details }} }} }}
}}
"""


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def store_everything(api: Api, admin: str) -> list[str]:
    """Configure every integration with credentials and every channel; the responses' text."""
    seen = []
    for kind, (config, credentials) in INTEGRATIONS.items():
        saved = await api.gql(
            "mutation($i: IntegrationInput!) { upsertIntegration(input: $i) { id } }",
            {"i": {"integrationType": kind, "config": config}},
            as_=admin,
        )
        stored = await api.gql(
            """mutation($t: String!, $c: JSON!) { setIntegrationCredentials(integrationType: $t,
                 credentials: $c) { id config hasCredentials } }""",
            {"t": kind, "c": credentials},
            as_=admin,
        )
        assert "errors" not in saved and "errors" not in stored, (saved, stored)
        assert stored["data"]["setIntegrationCredentials"]["hasCredentials"] is True
        seen += [str(saved), str(stored)]
    for kind, target, secret in CHANNELS:
        added = await api.gql(
            """mutation($i: NotificationChannelInput!) {
                 addNotificationChannel(input: $i) { id target } }""",
            {"i": {"kind": kind, "target": target, "secret": secret}},
            as_=admin,
        )
        assert "errors" not in added, added
        seen.append(str(added))
    return seen


async def fumble_secrets(api: Api, admin: str) -> list[str]:
    """Secrets sent the wrong way: inline in the document, in a malformed input."""
    inline = await api.gql(
        """mutation { setIntegrationCredentials(integrationType: "slack",
             credentials: {token: "xoxb-1111-SLACKBOTSECRET"}) { id } }""",
        as_=admin,
    )
    no_kind = await api.gql(
        "mutation($i: NotificationChannelInput!) { addNotificationChannel(input: $i) { id } }",
        {"i": {"target": CHANNELS[0][1], "secret": CHANNELS[0][2]}},
        as_=admin,
    )
    bad_kind = await api.gql(
        "mutation($i: NotificationChannelInput!) { addNotificationChannel(input: $i) { id } }",
        {"i": {"kind": "SMOKE_SIGNAL", "target": CHANNELS[2][1]}},
        as_=admin,
    )
    bad_url = await api.gql(
        "mutation($i: NotificationChannelInput!) { addNotificationChannel(input: $i) { id } }",
        {"i": {"kind": "WEBHOOK", "target": "ftp://x.example.com/WEBHOOKPATHTOKEN123456"}},
        as_=admin,
    )
    for body in (inline, no_kind, bad_kind, bad_url):
        assert error_codes(body) == ["BAD_USER_INPUT"], body
    return [str(inline), str(no_kind), str(bad_kind), str(bad_url)]


async def read_everything(
    api: Api, tokens: Callable[..., str], org: UUID, ids: dict[str, str]
) -> list[str]:
    admin, global_admin = tokens("org_admin"), tokens("global_admin")
    seen = []
    for document, token, variables in (
        (READ_AS_ORG_ADMIN, admin, {}),
        (READ_AS_GLOBAL_ADMIN, global_admin, {"org": str(org)}),
    ):
        body = await api.gql(document, variables, as_=token)
        assert "errors" not in body, body
        seen.append(str(body))
    reauthorization = await api.gql(
        """mutation { startReauthorization(integrationType: "gmail",
             redirectUri: "https://app.example.com/oauth") { authorizationUrl state } }""",
        as_=admin,
    )
    assert "errors" not in reauthorization, reauthorization
    seen.append(str(reauthorization))
    headers = {"Authorization": f"Bearer {tokens('member')}"}
    for kind, integration_id in ids.items():
        for path in (
            f"/api/integrations/{kind}/health",
            f"/api/integrations/{integration_id}/health",
            f"/api/integrations/{kind}/health/history?hours=720",
        ):
            response = await api.client.get(path, headers=headers)
            assert response.status_code == 200, response.text
            seen.append(response.text)
    admin_headers = {"Authorization": f"Bearer {global_admin}"}
    for query in ("", "?format=csv"):
        response = await api.client.get(
            f"/api/admin/integrations/health{query}", headers=admin_headers
        )
        assert response.status_code == 200
        seen.append(response.text)
    return seen


async def test_no_credential_or_channel_secret_reaches_a_client_or_a_log(
    api: Api, tokens: Callable[..., str], org_a: UUID, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = tokens("org_admin")

    with structlog.testing.capture_logs() as logs:
        # given every secret stored, and some sent the wrong way
        seen = await store_everything(api, admin)
        seen += await fumble_secrets(api, admin)
        listed = await api.gql("{ integrations { id type { key } } }", as_=admin)
        ids = {i["type"]["key"]: i["id"] for i in listed["data"]["integrations"]}

        # when a client reads everything it can
        seen += await read_everything(api, tokens, org_a, ids)

    # then none of it appears in any answer
    assert len(ids) == len(INTEGRATIONS)
    assert leaked("\n".join(seen)) == []
    # nor in any log line, structured or not
    assert leaked(repr(logs)) == []
    assert leaked(caplog.text) == []
    assert leaked(repr([(r.getMessage(), r.args, r.__dict__) for r in caplog.records])) == []


async def test_stored_secrets_are_described_not_shown(api: Api, tokens: Callable[..., str]) -> None:
    # given
    admin = tokens("org_admin")
    await store_everything(api, admin)

    # when
    body = await api.gql(
        "{ notificationChannels { kind target } auditEvents(first: 200) "
        "{ edges { node { action details } } } }",
        as_=admin,
    )

    # then channels show a masked, recognisable target
    targets = [c["target"] for c in body["data"]["notificationChannels"]]
    assert targets == [
        "https://hooks.example.com/services/T0000/B0000/***?token=***",
        "https://***@hooks.example.com/alerts",
        "tgram://***/***",
        "mailto://***@mail.example.com",
    ]
    # and the audit log names the credential fields that were set, never their values
    audited = {
        (e["node"]["details"].get("integrationType"), tuple(e["node"]["details"]["fields"]))
        for e in body["data"]["auditEvents"]["edges"]
        if e["node"]["action"] == "setIntegrationCredentials"
    }
    assert audited == {
        (kind, tuple(sorted(credentials))) for kind, (_, credentials) in INTEGRATIONS.items()
    }

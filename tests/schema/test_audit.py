"""Every administrative mutation leaves an audit event, with no secret in it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from db import alerts, notifications
from db.scope import as_service
from tests.schema.conftest import Api

SECRETS = ("xoxb-audit-secret", "hook-signing-secret", "s3cr3t-token")


async def test_every_admin_mutation_is_audited_without_secrets(
    api: Api, tokens: Callable[..., str], org_a: UUID, pool: asyncpg.Pool
) -> None:
    admin = tokens("org_admin", sub="alice")
    steps = [
        ('mutation { upsertIntegration(input: {integrationType: "slack"}) { id } }', {}),
        ('mutation { upsertIntegration(input: {integrationType: "gmail"}) { id } }', {}),
        (
            'mutation($c: JSON!) { setIntegrationCredentials(integrationType: "slack", '
            "credentials: $c) { id } }",
            {"c": {"botToken": SECRETS[0]}},
        ),
        (
            'mutation($c: JSON!) { setIntegrationCredentials(integrationType: "gmail", '
            "credentials: $c) { id } }",
            {"c": {"refreshToken": "r", "clientId": "c", "clientSecret": "x"}},
        ),
        ('mutation { setIntegrationEnabled(integrationType: "slack", enabled: false) { id } }', {}),
        (
            'mutation { startReauthorization(integrationType: "gmail", '
            'redirectUri: "https://app.example/cb") { state } }',
            {},
        ),
        ('mutation { runCheck(integrationType: "gmail", wait: false) { jobId } }', {}),
        ("mutation { upsertAlertRule(input: {failureThreshold: 3}) { id } }", {}),
        (
            "mutation($i: NotificationChannelInput!) { addNotificationChannel(input: $i) { id } }",
            {
                "i": {
                    "kind": "WEBHOOK",
                    "target": f"https://hooks.example/x?token={SECRETS[2]}",
                    "secret": SECRETS[1],
                }
            },
        ),
        (
            'mutation { reportExportRun(input: {integrationType: "gmail", '
            'idempotencyKey: "gmail:2026-11-01", status: SUCCEEDED}) { id } }',
            {},
        ),
        ('mutation { removeIntegration(integrationType: "slack") }', {}),
    ]
    for query, variables in steps:
        body = await api.gql(query, variables, as_=admin)
        assert "errors" not in body, (query, body)

    channel = (await api.gql("{ notificationChannels { id } }", as_=admin))["data"][
        "notificationChannels"
    ][0]["id"]
    async with as_service(pool) as conn:
        alert, _ = await alerts.open_or_repeat(
            conn,
            org_id=org_a,
            integration_type="gmail",
            kind="UNREACHABLE",
            severity="CRITICAL",
            category="NETWORK",
            title="t",
            message="m",
            guidance="g",
            now=datetime.now(UTC),
        )
        note = await notifications.create(
            conn, org_id=org_a, alert_id=alert.id, title="t", body="b"
        )
    for query in (
        f'mutation {{ acknowledgeAlert(alertId: "{alert.id}") {{ id }} }}',
        f'mutation {{ dismissAlert(alertId: "{alert.id}") {{ id }} }}',
        f'mutation {{ markNotificationRead(id: "{note.id}") {{ id }} }}',
        f'mutation {{ removeNotificationChannel(id: "{channel}") }}',
    ):
        body = await api.gql(query, as_=admin)
        assert "errors" not in body, (query, body)

    events = (
        await api.gql(
            "{ auditEvents(first: 100) { edges { node { action actor role orgId details } } } }",
            as_=admin,
        )
    )["data"]["auditEvents"]["edges"]

    actions = {e["node"]["action"] for e in events}
    assert actions >= {
        "upsertIntegration",
        "setIntegrationCredentials",
        "setIntegrationEnabled",
        "startReauthorization",
        "runCheck",
        "upsertAlertRule",
        "addNotificationChannel",
        "reportExportRun",
        "removeIntegration",
        "acknowledgeAlert",
        "dismissAlert",
        "markNotificationRead",
        "removeNotificationChannel",
    }
    assert {(e["node"]["actor"], e["node"]["role"], e["node"]["orgId"]) for e in events} == {
        ("alice", "ORG_ADMIN", str(org_a))
    }
    for secret in SECRETS:
        assert secret not in str(events)


async def test_members_and_coordinators_leave_no_audit_trail(
    api: Api, tokens: Callable[..., str]
) -> None:
    admin = tokens("org_admin")
    await api.gql(
        'mutation { upsertIntegration(input: {integrationType: "xledger"}) { id } }', as_=admin
    )
    before = await api.gql("{ auditEvents { edges { node { action } } } }", as_=admin)

    await api.gql(
        'mutation { runCheck(integrationType: "xledger", wait: false) { jobId } }',
        as_=tokens("coordinator"),
    )

    after = await api.gql("{ auditEvents { edges { node { action } } } }", as_=admin)
    assert after == before

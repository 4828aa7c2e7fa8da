"""Who may call what: every role against every operation of the contract, and org isolation.

The matrix below is DESIGN.md's role table ("Tokens and roles") written out per operation:

- member: reads its org (health, history, trends, alerts, notifications, export runs, and
  the org's configuration as the contract leaves those reads unrestricted);
- coordinator: + runCheck, acknowledge/dismiss alerts, mark notifications read;
- org_admin: + configure integrations, credentials, alert rules, channels; its audit log;
- service: runCheck and reportExportRun for its org, nothing else of the org's data;
- global_admin: everything in every org, globalHealthSummary. It has no org of its own,
  so it names one (`orgId`); left out, an org-scoped operation is BAD_USER_INPUT.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import graphql
import pytest

from db import health, notifications
from tests.factories import check_record, make_alert
from tests.schema.conftest import Api, error_codes

MEMBER, COORDINATOR, ORG_ADMIN, SERVICE, GLOBAL_ADMIN = (
    "member",
    "coordinator",
    "org_admin",
    "service",
    "global_admin",
)
ROLES = (MEMBER, COORDINATOR, ORG_ADMIN, SERVICE, GLOBAL_ADMIN)
ORG_ROLES = (MEMBER, COORDINATOR, ORG_ADMIN, SERVICE)

EVERYONE = frozenset(ROLES)
READERS = frozenset({MEMBER, COORDINATOR, ORG_ADMIN, GLOBAL_ADMIN})
RESPONDERS = frozenset({COORDINATOR, ORG_ADMIN, GLOBAL_ADMIN})
CHECKERS = frozenset({COORDINATOR, ORG_ADMIN, SERVICE, GLOBAL_ADMIN})
ADMINS = frozenset({ORG_ADMIN, GLOBAL_ADMIN})
EXPORTERS = frozenset({SERVICE, ORG_ADMIN, GLOBAL_ADMIN})
GLOBAL_ONLY = frozenset({GLOBAL_ADMIN})

# operation -> the roles that may call it.
ALLOWED: dict[str, frozenset[str]] = {
    # queries
    "viewer": EVERYONE,
    "integrationTypes": EVERYONE,
    "integrations": READERS,
    "orgHealth": READERS,
    "integrationHealth": READERS,
    "healthTrend": READERS,
    "alerts": READERS,
    "notifications": READERS,
    "exportRuns": READERS,
    "alertRules": READERS,
    "notificationChannels": READERS,
    "globalHealthSummary": GLOBAL_ONLY,
    "auditEvents": ADMINS,
    # mutations
    "runCheck": CHECKERS,
    "runOrgChecks": CHECKERS,
    "upsertIntegration": ADMINS,
    "setIntegrationEnabled": ADMINS,
    "setIntegrationCredentials": ADMINS,
    "removeIntegration": ADMINS,
    "startReauthorization": ADMINS,
    "acknowledgeAlert": RESPONDERS,
    "dismissAlert": RESPONDERS,
    "markNotificationRead": RESPONDERS,
    "upsertAlertRule": ADMINS,
    "addNotificationChannel": ADMINS,
    "removeNotificationChannel": ADMINS,
    "testNotificationChannel": ADMINS,
    "reportExportRun": EXPORTERS,
}

NOBODY_KNOWS = uuid4()  # an id no row has

# operation -> a call of it. `$org` is the orgId wherever the operation takes one. Calls
# about things that do not exist answer NOT_FOUND, which proves the role check passed
# without waking a worker (runCheck of an unconfigured type, a channel that is not there).
CALLS: dict[str, str] = {
    "viewer": "{ viewer { userId orgId role } }",
    "integrationTypes": "{ integrationTypes { key } }",
    "integrations": "query($org: UUID) { integrations(orgId: $org) { id } }",
    "orgHealth": "query($org: UUID) { orgHealth(orgId: $org) { integrationId } }",
    "integrationHealth": """query($org: UUID) {
        integrationHealth(integrationType: "http", orgId: $org) { integrationId } }""",
    "healthTrend": """query($org: UUID) {
        healthTrend(integrationType: "http", orgId: $org) { checkedAt } }""",
    "alerts": "query($org: UUID) { alerts(orgId: $org) { edges { node { id } } } }",
    "notifications": "{ notifications { unreadCount edges { node { id } } } }",
    "exportRuns": "query($org: UUID) { exportRuns(orgId: $org) { edges { node { id } } } }",
    "alertRules": "query($org: UUID) { alertRules(orgId: $org) { id } }",
    "notificationChannels": "query($org: UUID) { notificationChannels(orgId: $org) { id } }",
    "globalHealthSummary": "{ globalHealthSummary { organizations integrations } }",
    "auditEvents": "query($org: UUID) { auditEvents(orgId: $org) { edges { node { id } } } }",
    "runCheck": """mutation($org: UUID) {
        runCheck(integrationType: "http", orgId: $org, wait: false) { jobId } }""",
    "runOrgChecks": "mutation($org: UUID) { runOrgChecks(orgId: $org, wait: false) { jobId } }",
    "upsertIntegration": """mutation($org: UUID) { upsertIntegration(input: {
        integrationType: "http", orgId: $org, config: {url: "https://status.example.com"}})
        { id } }""",
    "setIntegrationEnabled": """mutation($org: UUID) {
        setIntegrationEnabled(integrationType: "slack", enabled: false, orgId: $org) { id } }""",
    "setIntegrationCredentials": """mutation($org: UUID) { setIntegrationCredentials(
        integrationType: "slack", credentials: {botToken: "xoxb-matrix"}, orgId: $org) { id } }""",
    "removeIntegration": """mutation($org: UUID) {
        removeIntegration(integrationType: "slack", orgId: $org) }""",
    "startReauthorization": """mutation($org: UUID) { startReauthorization(
        integrationType: "gmail", redirectUri: "https://app.example.com/oauth", orgId: $org)
        { state } }""",
    "acknowledgeAlert": f'mutation {{ acknowledgeAlert(alertId: "{NOBODY_KNOWS}") {{ id }} }}',
    "dismissAlert": f'mutation {{ dismissAlert(alertId: "{NOBODY_KNOWS}") {{ id }} }}',
    "markNotificationRead": f'mutation {{ markNotificationRead(id: "{NOBODY_KNOWS}") {{ id }} }}',
    "upsertAlertRule": """mutation($org: UUID) {
        upsertAlertRule(input: {orgId: $org, failureThreshold: 3}) { id } }""",
    "addNotificationChannel": """mutation($org: UUID) { addNotificationChannel(input: {
        orgId: $org, kind: EMAIL, target: "ops@example.com"}) { id } }""",
    "removeNotificationChannel": f'mutation {{ removeNotificationChannel(id: "{NOBODY_KNOWS}") }}',
    "testNotificationChannel": f'mutation {{ testNotificationChannel(id: "{NOBODY_KNOWS}") }}',
    "reportExportRun": """mutation($org: UUID) { reportExportRun(input: {orgId: $org,
        integrationType: "xledger", idempotencyKey: "xledger:2026-11-01", status: SUCCEEDED})
        { id } }""",
}

# What an allowed caller gets in its own org ("OK": data, no error).
OUTCOME: dict[str, str] = {
    **dict.fromkeys(CALLS, "OK"),
    "runCheck": "NOT_FOUND",
    "setIntegrationEnabled": "NOT_FOUND",
    "setIntegrationCredentials": "NOT_FOUND",
    "startReauthorization": "NOT_FOUND",
    "acknowledgeAlert": "NOT_FOUND",
    "dismissAlert": "NOT_FOUND",
    "markNotificationRead": "NOT_FOUND",
    "removeNotificationChannel": "NOT_FOUND",
    "testNotificationChannel": "NOT_FOUND",
}
# The notification inbox is per org and takes no orgId: a global admin has none.
GLOBAL_ADMIN_OUTCOME = {"notifications": "BAD_USER_INPUT", "markNotificationRead": "BAD_USER_INPUT"}

ORG_SCOPED = sorted(op for op, call in CALLS.items() if "$org" in call)

CONTRACT = Path(__file__).with_name("contract.graphql")


def expected(operation: str, role: str) -> str:
    if role not in ALLOWED[operation]:
        return "FORBIDDEN"
    if role == GLOBAL_ADMIN:
        return GLOBAL_ADMIN_OUTCOME.get(operation, OUTCOME[operation])
    return OUTCOME[operation]


def outcome(body: dict[str, Any]) -> str:
    codes = error_codes(body)
    assert len(codes) <= 1, body
    return codes[0] if codes else "OK"


async def call(api: Api, operation: str, token: str | None, org: UUID | None = None) -> str:
    variables = {"org": str(org)} if org else {}
    return outcome(await api.gql(CALLS[operation], variables, as_=token))


def test_the_matrix_covers_every_query_and_mutation_of_the_contract() -> None:
    contract = graphql.build_schema(CONTRACT.read_text())
    assert contract.query_type is not None and contract.mutation_type is not None

    operations = set(contract.query_type.fields) | set(contract.mutation_type.fields)

    assert set(ALLOWED) == operations
    assert set(CALLS) == operations


@pytest.mark.parametrize("operation", list(ALLOWED))
async def test_each_role_is_allowed_or_forbidden_as_the_role_table_says(
    api: Api, tokens: Callable[..., str], org_a: UUID, operation: str
) -> None:
    # given every role's token for org A; the global admin names org A where it can

    # when
    observed = {
        role: await call(api, operation, tokens(role), org_a if role == GLOBAL_ADMIN else None)
        for role in ROLES
    }

    # then
    assert observed == {role: expected(operation, role) for role in ROLES}


@pytest.mark.parametrize("credential", [None, "not-a-jwt"], ids=["no-token", "garbage-token"])
async def test_every_operation_without_a_valid_token_is_unauthenticated(
    api: Api, org_a: UUID, credential: str | None
) -> None:
    observed = {operation: await call(api, operation, credential, org_a) for operation in CALLS}

    assert observed == dict.fromkeys(CALLS, "UNAUTHENTICATED")


async def test_a_global_admin_must_name_the_org_of_an_org_scoped_operation(
    api: Api, tokens: Callable[..., str]
) -> None:
    observed = {}
    for operation in ORG_SCOPED:
        body = await api.gql(CALLS[operation], as_=tokens(GLOBAL_ADMIN))
        observed[operation] = (error_codes(body), body["errors"][0]["extensions"].get("field"))

    assert observed == dict.fromkeys(ORG_SCOPED, (["BAD_USER_INPUT"], "orgId"))


@pytest.mark.parametrize("operation", ORG_SCOPED)
async def test_naming_another_org_is_forbidden_to_all_but_the_global_admin(
    api: Api, tokens: Callable[..., str], org_a: UUID, org_b: UUID, operation: str
) -> None:
    # given tokens of org B
    callers = [role for role in ORG_ROLES if role in ALLOWED[operation]]
    assert callers, "every org-scoped operation has an org role allowed"

    # when they name org A
    observed = {role: await call(api, operation, tokens(role, org_b), org_a) for role in callers}
    by_global_admin = await call(api, operation, tokens(GLOBAL_ADMIN), org_a)

    # then
    assert observed == dict.fromkeys(callers, "FORBIDDEN")
    assert by_global_admin == OUTCOME[operation]


# -- org isolation: org A's data never reaches org B -------------------------------------

READ_EVERYTHING = """
query {
  integrations { id orgId config }
  orgHealth { integrationId orgId status error { message } history { checkedAt errorMessage }
              activeAlerts { id orgId title } }
  integrationHealth(integrationType: "http") { integrationId orgId }
  healthTrend(integrationType: "http") { checkedAt errorMessage }
  alerts { edges { node { id orgId title } } }
  notifications { unreadCount edges { node { id title body } } }
  exportRuns { edges { node { id orgId idempotencyKey } } }
  alertRules { id orgId }
  notificationChannels { id orgId target }
}
"""
AUDIT = "{ auditEvents { edges { node { id orgId actor details } } } }"


async def seed_org(api: Api, pool: asyncpg.Pool, admin: str, org: UUID, tag: str) -> list[str]:
    """Give `org` one of everything; return strings that identify its rows."""
    await api.gql(
        """mutation($url: String!) { upsertIntegration(input: {integrationType: "http",
             config: {url: $url}}) { id } }""",
        {"url": f"https://{tag}.example.com/health"},
        as_=admin,
    )
    await api.gql(
        'mutation { upsertAlertRule(input: {integrationType: "http", failureThreshold: 4}) '
        "{ id } }",
        as_=admin,
    )
    await api.gql(
        "mutation($t: String!) { addNotificationChannel(input: {kind: EMAIL, target: $t}) { id } }",
        {"t": f"{tag}@example.com"},
        as_=admin,
    )
    await api.gql(
        """mutation($key: String!) { reportExportRun(input: {integrationType: "xledger",
             idempotencyKey: $key, status: FAILED, errorCategory: NETWORK}) { id } }""",
        {"key": f"{tag}-export"},
        as_=admin,
    )
    async with pool.acquire() as conn:  # the worker's writes, as the service role
        await health.record_results(
            conn,
            [
                check_record(
                    org,
                    "http",
                    "unreachable",
                    error_category="NETWORK",
                    error_message=f"{tag}-down",
                )
            ],
        )
        alert = await make_alert(conn, org, "http", title=f"{tag}-alert")
        note = await notifications.create(
            conn, org_id=org, alert_id=alert.id, title=f"{tag}-note", body=f"{tag}-body"
        )
    listed = await api.gql(
        "{ integrations { id } notificationChannels { id } alertRules { id } "
        "exportRuns { edges { node { id } } } }",
        as_=admin,
    )
    data = listed["data"]
    return [
        str(org),
        tag,
        str(alert.id),
        str(note.id),
        data["integrations"][0]["id"],
        data["notificationChannels"][0]["id"],
        data["alertRules"][0]["id"],
        data["exportRuns"]["edges"][0]["node"]["id"],
    ]


async def test_org_a_data_never_appears_to_any_role_of_org_b(
    api: Api, pool: asyncpg.Pool, tokens: Callable[..., str], org_a: UUID, org_b: UUID
) -> None:
    # given both orgs with one of everything
    of_a = await seed_org(api, pool, tokens(ORG_ADMIN, org_a), org_a, "alpha-corp")
    of_b = await seed_org(api, pool, tokens(ORG_ADMIN, org_b), org_b, "beta-corp")

    # when every reading role of org B reads everything it can
    seen = []
    for role in (MEMBER, COORDINATOR, ORG_ADMIN):
        body = await api.gql(READ_EVERYTHING, as_=tokens(role, org_b))
        assert "errors" not in body, (role, body)
        seen.append(str(body))
    audit = await api.gql(AUDIT, as_=tokens(ORG_ADMIN, org_b))
    assert "errors" not in audit, audit
    seen.append(str(audit))

    # then org B sees its own rows and nothing of org A's
    everything = "\n".join(seen)
    assert all(marker in everything for marker in of_b)
    assert [marker for marker in of_a if marker in everything] == []


async def test_org_b_cannot_act_on_org_a_rows_by_id(
    api: Api, pool: asyncpg.Pool, tokens: Callable[..., str], org_a: UUID, org_b: UUID
) -> None:
    # given org A's alert, notification and channel
    admin_a = tokens(ORG_ADMIN, org_a)
    _, _, alert_id, note_id, _, channel_id, *_ = await seed_org(
        api, pool, admin_a, org_a, "alpha-corp"
    )
    admin_b = tokens(ORG_ADMIN, org_b)

    # when org B's admin names them
    attempts = {
        "acknowledgeAlert": ("acknowledgeAlert(alertId: $id) { id }", alert_id),
        "dismissAlert": ("dismissAlert(alertId: $id) { id }", alert_id),
        "markNotificationRead": ("markNotificationRead(id: $id) { id }", note_id),
        "removeNotificationChannel": ("removeNotificationChannel(id: $id)", channel_id),
        "testNotificationChannel": ("testNotificationChannel(id: $id)", channel_id),
    }
    observed = {
        name: outcome(
            await api.gql(f"mutation($id: UUID!) {{ {field} }}", {"id": row_id}, as_=admin_b)
        )
        for name, (field, row_id) in attempts.items()
    }

    # then they do not exist for org B (no existence leak), and nothing changed in org A
    assert observed == dict.fromkeys(attempts, "NOT_FOUND")
    after = await api.gql(
        "{ alerts { edges { node { acknowledgedAt dismissedAt } } } "
        "notifications { unreadCount } notificationChannels { id } }",
        as_=tokens(COORDINATOR, org_a),
    )
    (edge,) = after["data"]["alerts"]["edges"]
    assert edge["node"] == {"acknowledgedAt": None, "dismissedAt": None}
    assert after["data"]["notifications"]["unreadCount"] == 1
    assert after["data"]["notificationChannels"] == [{"id": channel_id}]


async def test_a_global_admin_reads_and_acts_in_the_org_it_names(
    api: Api, pool: asyncpg.Pool, tokens: Callable[..., str], org_a: UUID
) -> None:
    # given org A's data
    of_a = await seed_org(api, pool, tokens(ORG_ADMIN, org_a), org_a, "alpha-corp")
    alert_id = of_a[2]
    admin = tokens(GLOBAL_ADMIN)

    # when
    read = await api.gql(
        "query($org: UUID) { orgHealth(orgId: $org) { integrationId } "
        "alerts(orgId: $org) { edges { node { id } } } }",
        {"org": str(org_a)},
        as_=admin,
    )
    acknowledged = await api.gql(
        "mutation($id: UUID!) { acknowledgeAlert(alertId: $id) { id acknowledgedAt } }",
        {"id": alert_id},
        as_=admin,
    )

    # then
    assert read["data"]["orgHealth"][0]["integrationId"] == of_a[4]
    assert read["data"]["alerts"]["edges"][0]["node"]["id"] == alert_id
    assert acknowledged["data"]["acknowledgeAlert"]["acknowledgedAt"] is not None

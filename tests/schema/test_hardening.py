"""Hostile or broken requests: each gets a specific error, never a 500, and the server goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import httpx
import pytest
import structlog
from strawberry.extensions import query_depth_limiter

import resolvers.health
from schema.app import create_app
from schema.limits import MAX_BODY_BYTES
from schema.root import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from tests.schema.conftest import Api, api_settings, error_codes

FAKE_SQL = (
    'duplicate key value violates unique constraint "integration_credentials_pkey" '
    "SELECT ciphertext FROM integration_credentials WHERE org_id = $1"
)


async def still_answers(api: Api, token: str) -> None:
    body = await api.gql("{ viewer { role } }", as_=token)
    assert "errors" not in body, body


def messages(body: dict[str, Any]) -> str:
    return " ".join(e["message"] for e in body.get("errors") or [])


@pytest.fixture
def admin(tokens: Callable[..., str]) -> str:
    return tokens("org_admin")


@pytest.fixture
async def production_api(dsn: str, redis_url: str) -> AsyncIterator[Api]:
    app = create_app(api_settings(dsn, redis_url, IHM_ENV="production"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ihm") as client,
    ):
        yield Api(app, client)


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "code", "field"),
    [
        (
            'mutation { upsertIntegration(input: {integrationType: "teams"}) { id } }',
            "BAD_USER_INPUT",
            "integrationType",
        ),
        (
            'mutation { upsertAlertRule(input: {integrationType: "teams"}) { id } }',
            "BAD_USER_INPUT",
            "integrationType",
        ),
        (
            """mutation { reportExportRun(input: {integrationType: "teams",
                 idempotencyKey: "teams:1", status: SUCCEEDED}) { id } }""",
            "BAD_USER_INPUT",
            "integrationType",
        ),
        (
            'mutation { setIntegrationCredentials(integrationType: "teams", credentials: {}) '
            "{ id } }",
            "BAD_USER_INPUT",
            "integrationType",
        ),
        (
            'mutation { runCheck(integrationType: "teams", wait: false) { jobId } }',
            "NOT_FOUND",
            None,
        ),
    ],
    ids=["upsertIntegration", "upsertAlertRule", "reportExportRun", "credentials", "runCheck"],
)
async def test_an_unknown_integration_type_is_refused_by_name(
    api: Api, admin: str, document: str, code: str, field: str | None
) -> None:
    body = await api.gql(document, as_=admin)

    assert error_codes(body) == [code], body
    assert body["errors"][0]["extensions"].get("field") == field
    await still_answers(api, admin)


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("query($org: UUID) { orgHealth(orgId: $org) { status } }", {"org": "not-a-uuid"}),
        ('{ orgHealth(orgId: "not-a-uuid") { status } }', {}),
        ("mutation($id: UUID!) { acknowledgeAlert(alertId: $id) { id } }", {"id": "1234"}),
        ('mutation { acknowledgeAlert(alertId: "1234") { id } }', {}),
        ("mutation($id: UUID!) { markNotificationRead(id: $id) { id } }", {"id": 42}),
    ],
    ids=["variable", "literal", "alert-variable", "alert-literal", "number"],
)
async def test_a_malformed_uuid_is_bad_user_input(
    api: Api, admin: str, document: str, variables: dict[str, Any]
) -> None:
    body = await api.gql(document, variables, as_=admin)

    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert "UUID" in messages(body)
    await still_answers(api, admin)


@pytest.mark.parametrize(
    ("integration_type", "interval"),
    [("http", 299), ("http", 1), ("http", 0), ("http", -300), ("xledger", 899), ("xledger", 300)],
)
async def test_an_interval_under_the_type_floor_is_refused(
    api: Api, admin: str, integration_type: str, interval: int
) -> None:
    config = {"url": "https://status.example.com"} if integration_type == "http" else {}

    body = await api.gql(
        "mutation($i: IntegrationInput!) { upsertIntegration(input: $i) { id } }",
        {
            "i": {
                "integrationType": integration_type,
                "checkIntervalSeconds": interval,
                "config": config,
            }
        },
        as_=admin,
    )

    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["extensions"]["field"] == "checkIntervalSeconds"
    listed = await api.gql("{ integrations { id } }", as_=admin)
    assert listed["data"]["integrations"] == []


async def test_an_interval_at_the_floor_is_accepted(api: Api, admin: str) -> None:
    body = await api.gql(
        """mutation { upsertIntegration(input: {integrationType: "xledger",
             checkIntervalSeconds: 900}) { checkIntervalSeconds } }""",
        as_=admin,
    )

    assert body["data"]["upsertIntegration"]["checkIntervalSeconds"] == 900


# -- pagination ----------------------------------------------------------------------------

CONNECTIONS = ["alerts", "exportRuns", "auditEvents", "notifications"]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ("first: 0", "first"),
        ("first: -1", "first"),
        ("first: 100000", "first"),
        ('after: "garbage"', "after"),
        ('after: "Z2FyYmFnZQ=="', "after"),  # base64 of "garbage"
        ('first: 5, after: ""', "after"),
    ],
)
async def test_bad_page_arguments_are_bad_user_input(
    api: Api, admin: str, arguments: str, field: str
) -> None:
    refused = {}
    for connection in CONNECTIONS:
        body = await api.gql(f"{{ {connection}({arguments}) {{ edges {{ cursor }} }} }}", as_=admin)
        refused[connection] = (error_codes(body), body["errors"][0]["extensions"].get("field"))

    assert refused == dict.fromkeys(CONNECTIONS, (["BAD_USER_INPUT"], field))


# -- limits ----------------------------------------------------------------------------------


def _nested(levels: int) -> str:
    return "health { " * levels + "status" + " }" * levels


@pytest.mark.parametrize(
    "document",
    [
        "{ integrations { health { " + _nested(MAX_DEPTH) + " } } }",
        # The same depth spread over fragments counts the same.
        "query { integrations { ...A } } "
        "fragment A on Integration { health { ...B } } "
        "fragment B on IntegrationHealth { " + _nested(MAX_DEPTH) + " }",
    ],
    ids=["inline", "fragments"],
)
async def test_an_over_deep_query_is_refused_before_it_runs(
    api: Api, admin: str, document: str
) -> None:
    body = await api.gql(document, as_=admin)

    assert body["data"] is None
    assert set(error_codes(body)) == {"BAD_USER_INPUT"}
    assert f"exceeds maximum operation depth of {MAX_DEPTH}" in messages(body)
    await still_answers(api, admin)


async def test_a_thousand_aliases_are_refused(api: Api, admin: str) -> None:
    aliases = " ".join(f"a{i}: __typename" for i in range(1000))

    body = await api.gql(f"{{ {aliases} }}", as_=admin)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert messages(body) == f"1000 aliases found. Allowed: {MAX_ALIASES}"
    await still_answers(api, admin)


async def test_a_query_over_the_token_limit_is_refused(api: Api, admin: str) -> None:
    fields = " ".join(["__typename"] * (MAX_TOKENS + 1))

    body = await api.gql(f"{{ {fields} }}", as_=admin)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert f"more than {MAX_TOKENS} tokens" in messages(body)
    await still_answers(api, admin)


async def test_a_spread_of_an_unknown_fragment_is_bad_user_input(api: Api, admin: str) -> None:
    body = await api.gql("{ viewer { ...Nowhere } }", as_=admin)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert messages(body) == "Unknown fragment 'Nowhere'."
    await still_answers(api, admin)


async def test_a_fragment_cycle_is_bad_user_input(api: Api, admin: str) -> None:
    body = await api.gql(
        "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }", as_=admin
    )

    assert set(error_codes(body)) == {"BAD_USER_INPUT"}
    assert "within itself" in messages(body)
    await still_answers(api, admin)


async def _chunks(size: int) -> AsyncIterator[bytes]:
    chunk = b" " * 65536
    for _ in range(size // len(chunk)):
        yield chunk


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
async def test_a_ten_megabyte_body_is_413_with_a_graphql_error(
    api: Api, admin: str, declared: bool
) -> None:
    size = 10 * 1024 * 1024
    content: bytes | AsyncIterator[bytes] = (
        b'{"query": "{ viewer { role } }", "pad": "' + b"x" * size + b'"}'
        if declared
        else _chunks(size)
    )

    response = await api.client.post(
        "/graphql",
        content=content,
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert str(MAX_BODY_BYTES) in response.json()["errors"][0]["message"]
    await still_answers(api, admin)


# -- production ------------------------------------------------------------------------------

INTROSPECTION = [
    "{ __schema { queryType { name } } }",
    '{ __type(name: "Query") { fields { name } } }',
]


@pytest.mark.parametrize("document", INTROSPECTION)
async def test_introspection_is_refused_in_production(
    production_api: Api, tokens: Callable[..., str], document: str
) -> None:
    body = await production_api.gql(document, as_=tokens("org_admin"))

    assert body.get("data") is None
    assert set(error_codes(body)) == {"BAD_USER_INPUT"}
    assert "introspection has been disabled" in messages(body)
    await still_answers(production_api, tokens("member"))


@pytest.mark.parametrize("document", INTROSPECTION)
async def test_introspection_is_served_in_development(
    api: Api, tokens: Callable[..., str], document: str
) -> None:
    body = await api.gql(document, as_=tokens("member"))

    assert "errors" not in body, body


async def test_production_does_not_suggest_field_names(
    production_api: Api, api: Api, tokens: Callable[..., str]
) -> None:
    # Suggestions would spell out the schema that disabled introspection hides.
    in_production = await production_api.gql("{ viewr { role } }", as_=tokens("member"))
    in_development = await api.gql("{ viewr { role } }", as_=tokens("member"))

    assert error_codes(in_production) == ["BAD_USER_INPUT"]
    assert "Did you mean" not in messages(in_production)
    assert "Did you mean 'viewer'?" in messages(in_development)


async def test_graphiql_is_served_in_development_only(api: Api, production_api: Api) -> None:
    accept = {"Accept": "text/html"}

    development = await api.client.get("/graphql", headers=accept)
    production = await production_api.client.get("/graphql", headers=accept)

    assert development.status_code == 200
    assert development.headers["content-type"].startswith("text/html")
    assert "graphiql" in development.text.lower()
    assert production.status_code == 404
    assert "graphiql" not in production.text.lower()


# -- internal errors -------------------------------------------------------------------------


async def test_an_internal_error_is_masked_for_the_client_and_logged(
    api: Api, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a resolver that fails with a database-looking error
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError(FAKE_SQL)

    monkeypatch.setattr(resolvers.health, "org_health", broken)

    # when
    with structlog.testing.capture_logs() as logs:
        body = await api.gql("{ viewer { role } orgHealth { status } }", as_=admin)

    # then the client learns only that it failed
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert body["errors"][0]["message"] == "Internal server error."
    assert body["errors"][0]["path"] == ["orgHealth"]
    assert body["errors"][0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    text = str(body)
    for leak in ("SELECT", "integration_credentials", "RuntimeError", "Traceback", "broken"):
        assert leak not in text
    # and the operator learns what
    (logged,) = [e for e in logs if e["event"] == "graphql_internal_error"]
    assert logged["log_level"] == "error"
    assert logged["path"] == "orgHealth"
    assert logged["error"] == "RuntimeError"
    assert isinstance(logged["exc_info"], RuntimeError)
    # and the rest of the request, and the next one, are served
    assert body["data"] is None  # orgHealth is non-null: the error nulls the whole result
    await still_answers(api, admin)


async def test_an_error_outside_the_resolvers_is_masked_and_logged_too(
    api: Api, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a validation rule that crashes (an exception that ends the operation early)
    def crash(*_: object, **__: object) -> int:
        raise RuntimeError(FAKE_SQL)

    monkeypatch.setattr(query_depth_limiter, "determine_depth", crash)

    # when
    with structlog.testing.capture_logs() as logs:
        body = await api.gql("{ viewer { role } }", as_=admin)

    # then
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert body["errors"][0]["message"] == "Internal server error."
    assert "SELECT" not in str(body)
    assert [e["error"] for e in logs if e["event"] == "graphql_unhandled_error"] == ["RuntimeError"]


async def test_client_errors_are_not_logged_as_internal(api: Api, admin: str, org_b: UUID) -> None:
    with structlog.testing.capture_logs() as logs:
        await api.gql("{ nope }", as_=admin)
        await api.gql(
            "query($o: UUID) { orgHealth(orgId: $o) { status } }", {"o": str(org_b)}, as_=admin
        )

    assert [e for e in logs if e.get("log_level") == "error"] == []

"""The REST endpoints of DESIGN.md: the same resolvers, roles and org rules as GraphQL."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
import structlog
from arq.jobs import Job, JobStatus

import resolvers.health
from db import health
from tests.factories import check_record
from tests.schema.conftest import Api
from workers.jobs import check_job_id

CSV_COLUMNS = [
    "integrationType",
    "displayName",
    "integrations",
    "healthy",
    "degraded",
    "unreachable",
    "unknown",
    "checks",
    "successRate",
    "avgLatencyMs",
    "p95LatencyMs",
]


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json", response.text
    error: dict[str, Any] = response.json()["error"]
    return error


async def configure(api: Api, admin: str, *kinds: str) -> dict[str, str]:
    """Configure integrations; their ids by type."""
    for kind in kinds:
        config = {"url": "https://status.example.com"} if kind == "http" else {}
        body = await api.gql(
            "mutation($i: IntegrationInput!) { upsertIntegration(input: $i) { id } }",
            {"i": {"integrationType": kind, "config": config}},
            as_=admin,
        )
        assert "errors" not in body, body
    listed = await api.gql("{ integrations { id type { key } } }", as_=admin)
    return {i["type"]["key"]: i["id"] for i in listed["data"]["integrations"]}


@pytest.fixture
async def http_id(api: Api, tokens: Callable[..., str], pool: asyncpg.Pool, org_a: UUID) -> str:
    """Org A's http integration, checked three times: 30 min, 2 h and 3 h ago."""
    ids = await configure(api, tokens("org_admin"), "http")
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        for hours_ago, status in ((3, "healthy"), (2, "unreachable"), (0.5, "healthy")):
            extra = {"error_category": "NETWORK"} if status != "healthy" else {}
            await health.record_results(
                conn,
                [
                    check_record(
                        org_a, status=status, checked_at=now - timedelta(hours=hours_ago), **extra
                    )
                ],
            )
    return ids["http"]


# -- GET /api/integrations/{integration}/health -------------------------------------------


@pytest.mark.parametrize("by", ["type-key", "id"])
async def test_health_is_read_by_type_key_or_by_integration_id(
    api: Api, tokens: Callable[..., str], org_a: UUID, http_id: str, by: str
) -> None:
    ref = "http" if by == "type-key" else http_id

    response = await api.client.get(
        f"/api/integrations/{ref}/health", headers=bearer(tokens("member"))
    )

    assert response.status_code == 200
    body = response.json()
    assert body["integrationId"] == http_id
    assert body["orgId"] == str(org_a)
    assert body["integrationType"] == "http"
    assert body["status"] == "HEALTHY"
    assert body["connectionState"] == "CONNECTED"
    assert body["error"] is None


@pytest.mark.parametrize("ref", ["slack", "no-such-type", str(uuid4())])
async def test_health_of_an_unknown_integration_is_404(
    api: Api, tokens: Callable[..., str], http_id: str, ref: str
) -> None:
    response = await api.client.get(
        f"/api/integrations/{ref}/health", headers=bearer(tokens("member"))
    )

    assert response.status_code == 404
    assert error_of(response)["code"] == "NOT_FOUND"


ENDPOINTS = [
    ("GET", "/api/integrations/http/health"),
    ("POST", "/api/integrations/http/health/check?wait=false"),
    ("GET", "/api/integrations/http/health/history"),
    ("GET", "/api/admin/integrations/health"),
    ("GET", "/api/admin/integrations/health?format=csv"),
]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["none", "garbage", "basic"],
)
async def test_every_endpoint_without_a_valid_token_is_401_json(
    api: Api, headers: dict[str, str]
) -> None:
    observed = {}
    for method, path in ENDPOINTS:
        response = await api.client.request(method, path, headers=headers)
        observed[path] = (response.status_code, error_of(response)["code"])

    assert observed == {path: (401, "UNAUTHENTICATED") for _, path in ENDPOINTS}


async def test_another_orgs_integration_is_403_by_org_and_404_by_id(
    api: Api, tokens: Callable[..., str], org_a: UUID, org_b: UUID, http_id: str
) -> None:
    outsider = bearer(tokens("org_admin", org_b))

    named = await api.client.get(f"/api/integrations/http/health?orgId={org_a}", headers=outsider)
    by_id = await api.client.get(f"/api/integrations/{http_id}/health", headers=outsider)
    by_id_named = await api.client.get(
        f"/api/integrations/{http_id}/health?orgId={org_a}", headers=outsider
    )

    assert named.status_code == 403
    assert error_of(named)["code"] == "FORBIDDEN"
    assert by_id.status_code == 404  # it does not exist in org B: no existence leak
    assert by_id_named.status_code == 403


async def test_a_global_admin_names_the_org(
    api: Api, tokens: Callable[..., str], org_a: UUID, http_id: str
) -> None:
    admin = bearer(tokens("global_admin"))

    named = await api.client.get(f"/api/integrations/{http_id}/health?orgId={org_a}", headers=admin)
    unnamed = await api.client.get("/api/integrations/http/health", headers=admin)
    bad = await api.client.get("/api/integrations/http/health?orgId=nope", headers=admin)

    assert named.status_code == 200
    assert named.json()["integrationId"] == http_id
    assert unnamed.status_code == 400
    assert (error_of(unnamed)["code"], error_of(unnamed)["field"]) == ("BAD_USER_INPUT", "orgId")
    assert bad.status_code == 400
    assert (error_of(bad)["code"], error_of(bad)["field"]) == ("BAD_USER_INPUT", "orgId")


async def test_the_service_role_may_check_but_not_read(
    api: Api, tokens: Callable[..., str], http_id: str
) -> None:
    service = bearer(tokens("service"))

    read = await api.client.get(f"/api/integrations/{http_id}/health", headers=service)
    history = await api.client.get("/api/integrations/http/health/history", headers=service)
    check = await api.client.post(
        f"/api/integrations/{http_id}/health/check?wait=false", headers=service
    )

    assert (read.status_code, history.status_code) == (403, 403)
    assert check.status_code == 202, check.text


# -- GET …/health/history -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "statuses"),
    [
        ("", ["HEALTHY", "UNREACHABLE", "HEALTHY"]),  # the default: 24 hours
        ("?hours=1", ["HEALTHY"]),
        ("?hours=2", ["HEALTHY"]),
        ("?hours=720", ["HEALTHY", "UNREACHABLE", "HEALTHY"]),
    ],
)
async def test_history_lists_the_checks_of_the_last_hours_newest_first(
    api: Api, tokens: Callable[..., str], http_id: str, query: str, statuses: list[str]
) -> None:
    response = await api.client.get(
        f"/api/integrations/{http_id}/health/history{query}", headers=bearer(tokens("member"))
    )

    assert response.status_code == 200
    rows = response.json()
    assert [r["status"] for r in rows] == statuses
    checked = [r["checkedAt"] for r in rows]
    assert checked == sorted(checked, reverse=True)
    assert {r["trigger"] for r in rows} == {"SCHEDULED"}


BAD_HOURS = ["abc", "", "0", "-1", "721", "1.5", "²", "9" * 5000, "24; DROP TABLE x"]


async def test_a_bad_hours_value_is_400(api: Api, tokens: Callable[..., str], http_id: str) -> None:
    member = bearer(tokens("member"))
    observed = {}
    for hours in BAD_HOURS:
        response = await api.client.get(
            "/api/integrations/http/health/history", params={"hours": hours}, headers=member
        )
        error = error_of(response)
        observed[hours[:20]] = (response.status_code, error["code"], error.get("field"))

    assert observed == {h[:20]: (400, "BAD_USER_INPUT", "hours") for h in BAD_HOURS}
    after = await api.client.get("/api/integrations/http/health/history", headers=member)
    assert after.status_code == 200


async def test_history_of_an_unknown_integration_is_404(
    api: Api, tokens: Callable[..., str]
) -> None:
    response = await api.client.get(
        "/api/integrations/slack/health/history", headers=bearer(tokens("member"))
    )

    assert response.status_code == 404
    assert error_of(response)["code"] == "NOT_FOUND"


# -- POST …/health/check ---------------------------------------------------------------------


@pytest.mark.parametrize("by", ["type-key", "id"])
async def test_a_check_without_waiting_is_queued_and_answers_its_job_id(
    api: Api, tokens: Callable[..., str], org_a: UUID, http_id: str, by: str
) -> None:
    ref = "http" if by == "type-key" else http_id

    response = await api.client.post(
        f"/api/integrations/{ref}/health/check?wait=false", headers=bearer(tokens("coordinator"))
    )

    assert response.status_code == 202
    body = response.json()
    assert body["jobId"] == check_job_id(org_a, "http")
    assert body["integrationType"] == "http"
    assert body["result"] is None
    assert datetime.fromisoformat(body["enqueuedAt"]).tzinfo is not None
    queued = Job(body["jobId"], redis=api.app.state.services.queue)
    assert await queued.status() == JobStatus.queued


@pytest.mark.parametrize(
    ("role", "ref", "status", "code"),
    [
        ("member", "http", 403, "FORBIDDEN"),
        ("coordinator", "slack", 404, "NOT_FOUND"),
        ("coordinator", str(uuid4()), 404, "NOT_FOUND"),
    ],
)
async def test_a_check_is_refused_to_readers_and_for_unknown_integrations(
    api: Api, tokens: Callable[..., str], http_id: str, role: str, ref: str, status: int, code: str
) -> None:
    response = await api.client.post(
        f"/api/integrations/{ref}/health/check?wait=false", headers=bearer(tokens(role))
    )

    assert response.status_code == status
    assert error_of(response)["code"] == code


# -- GET /api/admin/integrations/health ------------------------------------------------------


async def test_the_admin_report_is_json_for_a_global_admin(
    api: Api, tokens: Callable[..., str], http_id: str
) -> None:
    response = await api.client.get(
        "/api/admin/integrations/health", headers=bearer(tokens("global_admin"))
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["organizations"], body["integrations"], body["healthy"]) == (1, 1, 1)
    by_type = {p["integrationType"]: p for p in body["providers"]}
    assert by_type["http"]["checks"] == 3
    assert set(by_type["http"]) == set(CSV_COLUMNS)
    assert body["unhealthyIntegrations"] == []
    assert set(body["scheduler"]) == {"lateRuns24h", "p50DriftSeconds", "maxDriftSeconds"}


async def test_the_admin_report_is_403_for_every_other_role(
    api: Api, tokens: Callable[..., str]
) -> None:
    roles = ["member", "coordinator", "org_admin", "service"]
    observed = {}
    for role in roles:
        for query in ("", "?format=csv"):
            response = await api.client.get(
                f"/api/admin/integrations/health{query}", headers=bearer(tokens(role))
            )
            observed[(role, query)] = (response.status_code, error_of(response)["code"])

    assert set(observed.values()) == {(403, "FORBIDDEN")}
    assert len(observed) == 2 * len(roles)


async def test_the_admin_report_as_csv_has_a_header_and_a_row_per_integration_type(
    api: Api, tokens: Callable[..., str], http_id: str
) -> None:
    admin = tokens("global_admin")

    response = await api.client.get(
        "/api/admin/integrations/health?format=csv", headers=bearer(admin)
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    header, *rows = list(csv.reader(io.StringIO(response.text)))
    assert header == CSV_COLUMNS
    types = await api.gql("{ integrationTypes { key } }", as_=admin)
    assert sorted(r[0] for r in rows) == sorted(t["key"] for t in types["data"]["integrationTypes"])
    (http_row,) = [dict(zip(header, r, strict=True)) for r in rows if r[0] == "http"]
    assert (http_row["integrations"], http_row["healthy"], http_row["checks"]) == ("1", "1", "3")


async def test_an_internal_error_is_a_masked_500_and_logged(
    api: Api, tokens: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("SELECT ciphertext FROM integration_credentials")

    monkeypatch.setattr(resolvers.health, "org_health", broken)

    with structlog.testing.capture_logs() as logs:
        response = await api.client.get(
            "/api/integrations/http/health", headers=bearer(tokens("member"))
        )

    assert response.status_code == 500
    assert error_of(response) == {
        "code": "INTERNAL_SERVER_ERROR",
        "message": "Internal server error.",
    }
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["rest_internal_error"]

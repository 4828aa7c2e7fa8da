"""The audit log: secrets stripped before anything is stored; newest first per org."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from db import audit
from db.audit import REDACTED, redact
from db.scope import Claims, as_caller, as_service
from tests.factories import make_org


def admin(org_id: UUID, role: str = "org_admin") -> Claims:
    return Claims(sub="admin-1", role=role, org_id=org_id)


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        return await make_org(conn)


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "botToken",
        "refresh_token",
        "secret",
        "clientSecret",
        "Password",
        "credentials",
        "apikey",
        "apiKey",
        "API-KEY",
        "api_key",
        "Authorization",
        "privateKey",
        "private_key",
    ],
)
def test_a_key_naming_a_secret_has_its_value_redacted(key: str) -> None:
    assert redact({key: "hunter2", "name": "ok"}) == {key: REDACTED, "name": "ok"}


def test_redaction_reaches_into_nested_dicts_and_lists() -> None:
    details = {
        "integrationType": "gmail",
        "credentials": {"accessToken": "ya29.a", "refreshToken": "1//r"},
        "input": {
            "config": {"baseUrl": "https://gmail.example", "clientSecret": "cs"},
            "headers": [{"Authorization": "Bearer abc"}, {"Accept": "application/json"}],
            "steps": [[{"password": "p"}], "plain"],
        },
    }

    assert redact(details) == {
        "integrationType": "gmail",
        "credentials": REDACTED,
        "input": {
            "config": {"baseUrl": "https://gmail.example", "clientSecret": REDACTED},
            "headers": [{"Authorization": REDACTED}, {"Accept": "application/json"}],
            "steps": [[{"password": REDACTED}], "plain"],
        },
    }


def test_redaction_leaves_the_original_untouched_and_makes_plain_json() -> None:
    org = UUID(int=7)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    details: dict[str, Any] = {"secret": "s", "orgId": org, "at": at, "tags": ("a", "b")}

    redacted = redact(details)

    assert details["secret"] == "s"
    assert redacted == {
        "secret": REDACTED,
        "orgId": str(org),
        "at": at.isoformat(),
        "tags": ["a", "b"],
    }
    json.dumps(redacted)


async def test_a_recorded_event_stores_no_secret(pool: asyncpg.Pool, org: UUID) -> None:
    async with as_caller(pool, admin(org)) as conn:
        await audit.record(
            conn,
            actor="admin-1",
            role="org_admin",
            org_id=org,
            action="setIntegrationCredentials",
            details={"integrationType": "slack", "credentials": {"botToken": "xoxb-123-secret"}},
        )
        page = await audit.list_events(conn, org, first=10, after=None)

    (event,) = page.items
    assert (event.actor, event.role, event.org_id, event.action) == (
        "admin-1",
        "org_admin",
        org,
        "setIntegrationCredentials",
    )
    assert event.details == {"integrationType": "slack", "credentials": REDACTED}
    async with as_service(pool) as conn:
        stored = await conn.fetchval("SELECT details::text FROM audit_log")
    assert "xoxb" not in stored


async def test_audit_events_page_newest_first(pool: asyncpg.Pool, org: UUID) -> None:
    for i in range(5):
        async with as_caller(pool, admin(org)) as conn:
            await audit.record(
                conn, actor="admin-1", role="org_admin", org_id=org, action=f"a{i}", details={}
            )

    actions: list[str] = []
    has_next: list[bool] = []
    after = None
    async with as_caller(pool, admin(org)) as conn:
        while True:
            page = await audit.list_events(conn, org, first=2, after=after)
            actions += [e.action for e in page.items]
            has_next.append(page.has_next)
            if not page.has_next:
                break
            after = page.end_cursor

    assert actions == ["a4", "a3", "a2", "a1", "a0"]
    assert has_next == [True, True, False]


async def test_org_b_sees_nothing_of_org_a_audit_events(pool: asyncpg.Pool, org: UUID) -> None:
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")
        await audit.record(
            conn, actor="admin-1", role="org_admin", org_id=org, action="x", details={}
        )

    async with as_caller(pool, admin(org_b)) as conn:
        page = await audit.list_events(conn, org, first=10, after=None)

    assert page.items == []


async def test_recording_an_event_into_another_org_is_refused(
    pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with as_caller(pool, admin(org_b)) as conn:
            await audit.record(
                conn, actor="admin-1", role="org_admin", org_id=org, action="x", details={}
            )


async def test_audit_events_list_refuses_a_bad_cursor(pool: asyncpg.Pool, org: UUID) -> None:
    with pytest.raises(ValueError, match="invalid cursor"):
        async with as_caller(pool, admin(org)) as conn:
            await audit.list_events(conn, org, first=10, after="bad")

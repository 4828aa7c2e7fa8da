"""The API in-process (real Postgres, Redis), tokens, and a GraphQL helper."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from starlette.applications import Starlette

from resolvers.tokens import mint_token
from schema.app import create_app
from settings import Settings

SECRET = "t" * 40
VAULT_KEY = base64.b64encode(b"v" * 32).decode()


def api_settings(dsn: str, redis_url: str, **extra: str) -> Settings:
    return Settings.model_validate(
        {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "IHM_JWT_SECRET": SECRET,
            "IHM_VAULT_KEYS": f"k1:{VAULT_KEY}",
            "IHM_CHECK_TIMEOUT_SECONDS": "3",
            "IHM_MANUAL_CHECK_COOLDOWN_SECONDS": "5",
            **extra,
        }
    )


def token(role: str, org: UUID | None, *, sub: str | None = None, ttl: int = 600) -> str:
    return mint_token(
        SECRET,
        role=role,
        org_id=None if role == "global_admin" else org,
        sub=sub or f"{role}-user",
        ttl_seconds=ttl,
        audience="ihm-admin" if role == "global_admin" else "ihm",
    )


class Api:
    def __init__(self, app: Starlette, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {as_}"} if as_ else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code in (200, 400), response.text
        body: dict[str, Any] = response.json()
        return body


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


@pytest.fixture
def org_a() -> UUID:
    return uuid4()


@pytest.fixture
def org_b() -> UUID:
    return uuid4()


@pytest.fixture
async def api(dsn: str, redis_url: str) -> AsyncIterator[Api]:
    app = create_app(api_settings(dsn, redis_url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ihm") as client,
    ):
        yield Api(app, client)


@pytest.fixture
def tokens(org_a: UUID) -> Callable[..., str]:
    def make(role: str, org: UUID | None = None, **kwargs: Any) -> str:
        return token(role, org or org_a, **kwargs)

    return make

"""Dynamics 365 Business Central: a client-credentials token (cached), then one company."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx

from workers.checks import guidance
from workers.checks.base import Adapter, CheckFailed, oauth_error
from workers.checks.config import Dynamics365Config
from workers.checks.context import TokenCache
from workers.checks.guidance import Provider
from workers.checks.result import HealthError

CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
# AADSTS90002 "tenant not found", AADSTS900023 "not a valid tenant identifier".
UNKNOWN_TENANT_CODES = frozenset({90002, 900023})
MAX_TOKEN_SECONDS = 24 * 3600.0


class Dynamics365Check(Adapter[Dynamics365Config]):
    integration_type = "dynamics365"
    # The client id and secret are pasted, not signed in: wrong ones need editing, not a login.
    provider = Provider(
        "Microsoft Dynamics 365 Business Central",
        "client_credentials",
        docs_url="https://learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/",
    )

    async def probe(self, org_id: UUID, config: Dynamics365Config) -> HealthError | None:
        credentials = await self.credentials(org_id)
        client_id, secret = credentials.get("clientId"), credentials.get("clientSecret")
        if not client_id or not secret:
            raise CheckFailed(guidance.missing_credentials(self.provider))
        client = (str(client_id), str(secret))
        key = _cache_key(config, client)
        url = (
            f"{config.base_url}/v2.0/{config.tenant_id}/{config.environment}"
            "/api/v2.0/companies?$top=1"
        )
        token = self.ctx.tokens.get(key, self.ctx.clock())
        cached = token is not None
        response = await self._get(url, token or await self._fetch_token(config, client))
        if response.status_code == 401:
            self.ctx.tokens.drop(key)
            if cached:  # maybe revoked early: one fresh token, one more try
                response = await self._get(url, await self._fetch_token(config, client))
        if response.status_code == 401:
            self.ctx.tokens.drop(key)
            raise CheckFailed(
                guidance.auth_rejected(
                    self.provider,
                    "Business Central refused the app's token: is the app registered there?",
                )
            )
        if response.status_code == 403:
            return guidance.missing_permission(
                self.provider, "the app has no permission to read companies in Business Central"
            )
        if response.status_code == 404:
            raise CheckFailed(
                guidance.invalid_configuration(
                    self.provider,
                    f"Business Central knows no environment '{config.environment}' "
                    f"for tenant '{config.tenant_id}'",
                )
            )
        self.fail_on_status(response)
        if not isinstance(self.json_body(response).get("value"), list):
            raise CheckFailed(
                guidance.provider_error(self.provider, "an unexpected answer (no companies list)")
            )
        return None

    async def _get(self, url: str, token: str) -> httpx.Response:
        return await self.call("GET", url, headers={"Authorization": f"Bearer {token}"})

    async def _fetch_token(self, config: Dynamics365Config, client: tuple[str, str]) -> str:
        response = await self.call(
            "POST",
            config.resolved_token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": client[0],
                "client_secret": client[1],
                "scope": config.scope,
            },
        )
        if response.status_code in (400, 401):
            self._token_refused(config, response)
        self.fail_on_status(response)
        body = self.json_body(response)
        token = self.access_token(body)
        lifetime = _seconds(body.get("expires_in"))
        if lifetime:
            self.ctx.tokens.put(
                _cache_key(config, client), token, self.ctx.clock() + timedelta(seconds=lifetime)
            )
        return token

    def _token_refused(self, config: Dynamics365Config, response: httpx.Response) -> None:
        """Raise for the refusals Entra explains; fail_on_status handles the rest."""
        code = oauth_error(response)
        said = f"Microsoft Entra ID says {code}" if code else f"HTTP {response.status_code}"
        if code in CLIENT_ERRORS:
            raise CheckFailed(guidance.auth_rejected(self.provider, said))
        if code == "invalid_request" and _names_unknown_tenant(response):
            raise CheckFailed(
                guidance.invalid_configuration(
                    self.provider, f"Microsoft Entra ID knows no tenant '{config.tenant_id}'"
                )
            )
        if code == "invalid_scope":
            raise CheckFailed(
                guidance.invalid_configuration(self.provider, "the scope is not valid for the app")
            )
        if code is not None:
            raise CheckFailed(guidance.provider_error(self.provider, said, transient=False))


def _cache_key(config: Dynamics365Config, client: tuple[str, str]) -> str:
    return TokenCache.key(config.resolved_token_url, *client, config.scope)


def _names_unknown_tenant(response: httpx.Response) -> bool:
    """Matched on, never shown: Entra's description may echo the request."""
    body: Any = response.json()
    codes = body.get("error_codes")
    if isinstance(codes, list) and any(
        c in UNKNOWN_TENANT_CODES for c in codes if isinstance(c, int)
    ):
        return True
    return "tenant" in str(body.get("error_description", "")).lower()


def _seconds(value: Any) -> float:
    """`expires_in` as seconds; Entra sends a number, some proxies a string."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 0.0
    return min(seconds, MAX_TOKEN_SECONDS) if seconds > 0 else 0.0

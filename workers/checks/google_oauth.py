"""What Gmail and Google Calendar share: one token refresh on a 401, Google's error shapes.

The stored access token is tried first; a 401 (or no token at all) refreshes it
once with the refresh token, the new one is saved through the credential
source, and the call is retried once.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import httpx

from workers.checks import guidance
from workers.checks.base import Adapter, CheckFailed, oauth_error, retry_after
from workers.checks.config import GmailConfig, GoogleCalendarConfig
from workers.checks.context import Credentials
from workers.checks.result import HealthError

STATUS_PAGE = "https://www.google.com/appsstatus/dashboard/"
CREDENTIAL_FIELDS = ("accessToken", "refreshToken", "clientId", "clientSecret")
# Google answers some quota errors with 403, not 429.
RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)
SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})
API_DISABLED_REASONS = frozenset({"SERVICE_DISABLED", "accessNotConfigured"})
# The OAuth client itself is wrong: reconnecting won't help, the pasted id/secret must change.
CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})

G = TypeVar("G", bound=GmailConfig | GoogleCalendarConfig)


class GoogleCheck(Adapter[G]):
    # What the connection must be allowed to do, in words (for missing_permission).
    needed_access: ClassVar[str]

    async def google_get(self, org_id: UUID, config: G, url: str) -> httpx.Response:
        """GET `url` with the stored access token, refreshing it once when refused."""
        found = await self.credentials(org_id)
        stored = _fields(found)
        refreshed = False
        token = stored.get("accessToken")
        if token is None:
            token, refreshed = await self._refresh(org_id, config, stored), True
        response = await self._get(url, token)
        if response.status_code == 401 and not refreshed:
            token = await self._refresh(org_id, config, stored)
            response = await self._get(url, token)
        return response

    def google_status(self, response: httpx.Response) -> HealthError | None:
        """None when fine, a HealthError when DEGRADED; raises CheckFailed when unreachable."""
        code = response.status_code
        if code == 429:
            return guidance.rate_limited(self.provider, retry_after(response))
        if code == 403:
            reasons, message = _google_error(response)
            if reasons & RATE_LIMIT_REASONS:
                return guidance.rate_limited(self.provider, retry_after(response))
            scope_header = "insufficient_scope" in response.headers.get("www-authenticate", "")
            scope_message = "insufficient" in message and "scope" in message
            if reasons & SCOPE_REASONS or scope_header or scope_message:
                return guidance.missing_permission(self.provider, self.needed_access)
            if reasons & API_DISABLED_REASONS:
                raise CheckFailed(
                    guidance.invalid_configuration(
                        self.provider,
                        "its API is not enabled in the Google Cloud project of the OAuth client",
                    )
                )
        self.fail_on_status(response)
        return None

    async def _get(self, url: str, token: str) -> httpx.Response:
        return await self.call("GET", url, headers={"Authorization": f"Bearer {token}"})

    async def _refresh(self, org_id: UUID, config: G, stored: dict[str, str]) -> str:
        if not all(stored.get(name) for name in CREDENTIAL_FIELDS[1:]):
            raise CheckFailed(
                guidance.auth_rejected(self.provider, "no refresh token is stored to renew it")
            )
        response = await self.call(
            "POST",
            config.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": stored["refreshToken"],
                "client_id": stored["clientId"],
                "client_secret": stored["clientSecret"],
            },
        )
        if response.status_code in (400, 401, 403):
            code = oauth_error(response)
            said = f"Google says {code}" if code else f"HTTP {response.status_code}"
            if code in CLIENT_ERRORS:
                client = dataclasses.replace(self.provider, auth_kind="client_credentials")
                raise CheckFailed(guidance.auth_rejected(client, said))
            # invalid_grant: the refresh token was revoked or expired; only a new sign-in helps.
            raise CheckFailed(guidance.auth_rejected(self.provider, said))
        self.fail_on_status(response)
        body = self.json_body(response)
        token = self.access_token(body)
        renewed = {**stored, "accessToken": token}
        # Google may rotate the refresh token; keep the newest or the next refresh fails.
        if isinstance(body.get("refresh_token"), str) and body["refresh_token"]:
            renewed["refreshToken"] = body["refresh_token"]
        await self.ctx.credentials.save(org_id, self.integration_type, renewed)
        return token


def _fields(found: Credentials) -> dict[str, str]:
    values = {name: found.get(name) for name in CREDENTIAL_FIELDS}
    return {name: value for name, value in values.items() if isinstance(value, str) and value}


def _google_error(response: httpx.Response) -> tuple[frozenset[str], str]:
    """Reasons and the lower-cased message of Google's `{"error": {...}}`, for matching only."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return frozenset(), ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return frozenset(), ""
    # Classic `errors[].reason` (rateLimitExceeded) and newer `details[].reason` (ErrorInfo).
    items = [
        item
        for key in ("errors", "details")
        if isinstance(error.get(key), list)
        for item in error[key]
        if isinstance(item, dict)
    ]
    reasons = {str(item.get("reason")) for item in items}
    message = error.get("message")
    return frozenset(reasons), message.lower() if isinstance(message, str) else ""

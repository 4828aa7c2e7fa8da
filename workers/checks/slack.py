"""Slack: `POST {baseUrl}/auth.test` with the bot token; scopes from `X-OAuth-Scopes`."""

from __future__ import annotations

from uuid import UUID

from workers.checks import guidance
from workers.checks.base import Adapter, CheckFailed, retry_after
from workers.checks.config import SlackConfig
from workers.checks.guidance import Provider
from workers.checks.result import HealthError, Status

# Slack answers HTTP 200 with {"ok": false, "error": ...}; these mean the token is dead.
AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "no_permission",
        "org_login_required",
        "ekm_access_denied",
    }
)


class SlackCheck(Adapter[SlackConfig]):
    integration_type = "slack"
    provider = Provider(
        "Slack",
        "bearer",
        docs_url="https://api.slack.com/methods/auth.test",
        status_page="https://slack-status.com/",
    )

    async def probe(self, org_id: UUID, config: SlackConfig) -> HealthError | None:
        credentials = await self.credentials(org_id)
        response = await self.call(
            "POST",
            f"{config.base_url}/auth.test",
            headers={"Authorization": f"Bearer {credentials.get('botToken')}"},
        )
        if response.status_code == 429:
            return guidance.rate_limited(self.provider, retry_after(response))
        self.fail_on_status(response)
        body = self.json_body(response)
        if body.get("ok") is not True:
            code = str(body.get("error", "unknown_error"))
            if code == "ratelimited":
                return guidance.rate_limited(self.provider, retry_after(response))
            if code in AUTH_ERRORS:
                raise CheckFailed(guidance.auth_rejected(self.provider, f"Slack says {code}"))
            raise CheckFailed(
                guidance.provider_error(self.provider, f"Slack says {code}", transient=False),
                Status.UNREACHABLE,
            )
        granted = {s.strip() for s in response.headers.get("x-oauth-scopes", "").split(",")}
        missing = [s for s in config.required_scopes if s not in granted]
        if missing:
            return guidance.missing_permission(
                self.provider, f"the bot token lacks the scope(s) {', '.join(missing)}"
            )
        return None

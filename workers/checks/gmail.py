"""Gmail: list at most one message of the connected mailbox."""

from __future__ import annotations

from uuid import UUID

from workers.checks.config import GmailConfig
from workers.checks.google_oauth import STATUS_PAGE, GoogleCheck
from workers.checks.guidance import Provider
from workers.checks.result import HealthError


class GmailCheck(GoogleCheck[GmailConfig]):
    integration_type = "gmail"
    provider = Provider(
        "Gmail",
        "oauth2",
        docs_url="https://developers.google.com/gmail/api/reference/rest/v1/users.messages/list",
        status_page=STATUS_PAGE,
    )
    needed_access = "reading the mailbox (a Gmail read scope was not granted)"

    async def probe(self, org_id: UUID, config: GmailConfig) -> HealthError | None:
        response = await self.google_get(
            org_id, config, f"{config.base_url}/gmail/v1/users/me/messages?maxResults=1"
        )
        degraded = self.google_status(response)
        if degraded is not None:
            return degraded
        # An empty mailbox answers {"resultSizeEstimate": 0}: any JSON object is a good answer.
        self.json_body(response)
        return None

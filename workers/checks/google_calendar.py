"""Google Calendar: list at most one event of the primary calendar; check the access role."""

from __future__ import annotations

from uuid import UUID

from workers.checks import guidance
from workers.checks.base import CheckFailed
from workers.checks.config import GoogleCalendarConfig
from workers.checks.google_oauth import STATUS_PAGE, GoogleCheck
from workers.checks.guidance import Provider
from workers.checks.result import HealthError

WRITE_ROLES = frozenset({"owner", "writer"})
# What each read-only role lets the connection do, for the message.
READ_ROLES = {
    "reader": "it can only read the primary calendar",
    "freeBusyReader": "it can only see free/busy times of the primary calendar",
}


class GoogleCalendarCheck(GoogleCheck[GoogleCalendarConfig]):
    integration_type = "google_calendar"
    provider = Provider(
        "Google Calendar",
        "oauth2",
        docs_url="https://developers.google.com/calendar/api/v3/reference/events/list",
        status_page=STATUS_PAGE,
    )
    needed_access = "access to the primary calendar (a Calendar scope was not granted)"

    async def probe(self, org_id: UUID, config: GoogleCalendarConfig) -> HealthError | None:
        response = await self.google_get(
            org_id,
            config,
            f"{config.base_url}/calendar/v3/calendars/primary/events?maxResults=1",
        )
        degraded = self.google_status(response)
        if degraded is not None:
            return degraded
        role = self.json_body(response).get("accessRole")
        if role in WRITE_ROLES:
            return None
        if isinstance(role, str) and role in READ_ROLES:
            if not config.require_write:
                return None
            return guidance.missing_permission(
                self.provider, f"write access to the primary calendar ({READ_ROLES[role]})"
            )
        if role == "none":
            return guidance.missing_permission(self.provider, "access to the primary calendar")
        raise CheckFailed(
            guidance.provider_error(self.provider, "an unexpected answer (no access role)")
        )

"""Any HTTP service: GET or HEAD `config.url`, healthy on an expected status."""

from __future__ import annotations

import base64
from uuid import UUID

from workers.checks import guidance
from workers.checks.base import Adapter, CheckFailed, classify_status
from workers.checks.config import HttpConfig
from workers.checks.guidance import Provider
from workers.checks.result import HealthError, Status


class HttpCheck(Adapter[HttpConfig]):
    integration_type = "http"
    provider = Provider("The HTTP service", "bearer")

    async def probe(self, org_id: UUID, config: HttpConfig) -> HealthError | None:
        # Credentials are optional here: many health endpoints are public.
        found = await self.optional_credentials(org_id)
        headers: dict[str, str] = {}
        if found is not None and found.get("bearerToken"):
            headers["Authorization"] = f"Bearer {found.get('bearerToken')}"
        elif found is not None and found.get("username"):
            pair = f"{found.get('username')}:{found.get('password')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

        response = await self.call(config.method, config.target_url, headers=headers)
        if config.is_expected(response.status_code):
            return None
        error = classify_status(self.provider, response) or guidance.provider_error(
            self.provider, f"HTTP {response.status_code}, not an expected status", transient=False
        )
        if error.category == "RATE_LIMITED":
            return error
        raise CheckFailed(error, Status.UNREACHABLE)

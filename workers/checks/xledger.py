"""Xledger: the smallest GraphQL query there is, `query { __typename }`, with the API token."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from workers.checks import guidance
from workers.checks.base import Adapter, CheckFailed
from workers.checks.config import XledgerConfig
from workers.checks.guidance import Provider
from workers.checks.result import HealthError

QUERY = {"query": "query { __typename }"}
# GraphQL servers often answer HTTP 200 with {"errors": [...]}; these words mean the token.
AUTH_WORDS = re.compile(
    r"unauthori[sz]ed|unauthenticated|not authenticated|authentication|"
    r"invalid[\w ]*token|token[\w ]*(invalid|expired|revoked)|expired|access denied|forbidden"
)
AUTH_CODES = frozenset({"UNAUTHENTICATED", "UNAUTHORIZED", "FORBIDDEN", "AUTH_NOT_AUTHORIZED"})
RATE_WORDS = re.compile(r"rate limit|too many requests|throttl")


class XledgerCheck(Adapter[XledgerConfig]):
    integration_type = "xledger"
    provider = Provider("Xledger", "api_key", docs_url="https://www.xledger.net/graphql/")

    async def probe(self, org_id: UUID, config: XledgerConfig) -> HealthError | None:
        credentials = await self.credentials(org_id)
        token = credentials.get("apiToken")
        if not token:
            raise CheckFailed(guidance.missing_credentials(self.provider))
        response = await self.call(
            "POST",
            f"{config.base_url}/graphql",
            headers={"Authorization": f"token {token}"},
            json=QUERY,
        )
        self.fail_on_status(response)
        body = self.json_body(response)
        errors = body.get("errors")
        if errors:
            return self._graphql_errors(errors)
        if not isinstance(body.get("data"), dict):
            raise CheckFailed(
                guidance.provider_error(self.provider, "an unexpected answer (no GraphQL data)")
            )
        return None

    def _graphql_errors(self, errors: Any) -> HealthError:
        """Classify `errors` by their words; the messages themselves are never shown."""
        items = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        messages = " ".join(str(e.get("message", "")) for e in items).lower()
        codes = {
            str(e["extensions"].get("code", "")).upper()
            for e in items
            if isinstance(e.get("extensions"), dict)
        }
        if codes & AUTH_CODES or AUTH_WORDS.search(messages):
            raise CheckFailed(
                guidance.auth_rejected(self.provider, "the GraphQL API refused the token")
            )
        if RATE_WORDS.search(messages):
            return guidance.rate_limited(self.provider, None)
        # Even `__typename` failed: something on Xledger's side, worth the quick retry.
        raise CheckFailed(
            guidance.provider_error(self.provider, "the GraphQL API returned an error")
        )

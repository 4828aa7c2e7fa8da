"""The demo organization `ihm up` seeds: all six providers, served by the simulator."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db import credentials, integrations, organizations
from db.vault import Vault

DEMO_ORG_ID = UUID("00000000-0000-4000-8000-00000000d3a0")
DEMO_ORG_NAME = "Demo organization"


def demo_integrations(simulator_url: str) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """Per type: its config (pointing at the simulator under key `demo-<type>`) and
    the credentials the simulator accepts."""
    sim = simulator_url.rstrip("/")
    google = {
        "accessToken": "demo-access-token",
        "refreshToken": "demo-refresh-token",
        "clientId": "demo-client",
        "clientSecret": "demo-client-secret",
    }
    return {
        "http": ({"url": f"{sim}/demo-http/http/status"}, {}),
        "slack": ({"baseUrl": f"{sim}/demo-slack/slack/api"}, {"botToken": "xoxb-demo"}),
        "gmail": (
            {"baseUrl": f"{sim}/demo-gmail/google", "tokenUrl": f"{sim}/demo-gmail/google/token"},
            google,
        ),
        "google_calendar": (
            {
                "baseUrl": f"{sim}/demo-google_calendar/google",
                "tokenUrl": f"{sim}/demo-google_calendar/google/token",
            },
            google,
        ),
        "xledger": ({"baseUrl": f"{sim}/demo-xledger/xledger"}, {"apiToken": "demo-api-token"}),
        "dynamics365": (
            {
                "baseUrl": f"{sim}/demo-dynamics365/dynamics",
                "tokenUrl": f"{sim}/demo-dynamics365/dynamics/token/demo-tenant/oauth2/v2.0/token",
                "tenantId": "demo-tenant",
                "environment": "production",
            },
            {"clientId": "demo-client", "clientSecret": "demo-client-secret"},
        ),
    }


async def seed(conn: asyncpg.Connection, vault: Vault, *, simulator_url: str) -> None:
    """Idempotent: what the demo org's admins changed since stays as it is, but the
    simulator's address follows the current run."""
    await organizations.ensure(conn, DEMO_ORG_ID, DEMO_ORG_NAME)
    for kind, (config, secret) in demo_integrations(simulator_url).items():
        existing = await integrations.get(conn, DEMO_ORG_ID, kind)
        integration = await integrations.upsert(
            conn,
            DEMO_ORG_ID,
            kind,
            enabled=existing.enabled if existing else True,
            monitoring_mode=existing.monitoring_mode if existing else "ACTIVE",
            check_interval_seconds=existing.check_interval_seconds if existing else None,
            config={**(existing.config if existing else {}), **config},
        )
        if secret and not await credentials.exists(conn, integration.id):
            await credentials.store(
                conn, vault, org_id=DEMO_ORG_ID, integration_id=integration.id, payload=secret
            )

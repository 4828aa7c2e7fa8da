"""The demo organization `ihm up` seeds, so a fresh install has something to watch."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from db import integrations, organizations

DEMO_ORG_ID = UUID("00000000-0000-4000-8000-00000000d3a0")
DEMO_ORG_NAME = "Demo organization"


async def seed(conn: asyncpg.Connection, *, api_base_url: str) -> None:
    """Idempotent: re-running keeps whatever the demo org's admins changed since."""
    await organizations.ensure(conn, DEMO_ORG_ID, DEMO_ORG_NAME)
    if await integrations.get(conn, DEMO_ORG_ID, "http") is None:
        # Watches the monitor's own liveness endpoint: healthy while `ihm up` runs.
        await integrations.upsert(
            conn,
            DEMO_ORG_ID,
            "http",
            config={"url": f"{api_base_url}/healthz", "method": "GET"},
        )

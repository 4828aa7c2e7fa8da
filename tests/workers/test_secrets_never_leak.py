"""No credential value ever reaches a log line, a result, an event or a status row."""

from __future__ import annotations

import json
import logging
import uuid

import asyncpg
import httpx
import pytest
import structlog
from redis.asyncio import Redis

from db import credentials
from db.demo import demo_integrations
from db.scope import as_service
from db.vault import Vault
from tests.factories import make_org
from workers import events
from workers.checks.context import CheckContext, TokenCache
from workers.credential_source import VaultCredentialSource
from workers.runner import Runner, run_health_checks

SECRETS = {
    "botToken": "xoxb-LEAK-slack-bot-token",
    "apiToken": "LEAK-xledger-api-token",
    "accessToken": "LEAK-google-access-token",
    "refreshToken": "LEAK-google-refresh-token",
    "clientId": "LEAK-client-id",
    "clientSecret": "LEAK-client-secret",
    "bearerToken": "LEAK-http-bearer",
}
# Every provider failing in a way that exercises its credential handling.
MODES = {
    "http": {"mode": "auth"},
    "slack": {"mode": "token_revoked"},
    "gmail": {"mode": "invalid_grant"},
    "google_calendar": {"mode": "auth"},
    "xledger": {"mode": "auth"},
    "dynamics365": {"mode": "auth"},
}


async def test_a_full_run_with_failures_leaks_no_secret(
    pool: asyncpg.Pool,
    redis_url: str,
    simulator_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    vault = Vault([("k1", b"k" * 32)])
    run = uuid.uuid4().hex[:8]
    async with as_service(pool) as conn:
        org = await make_org(conn)
        for kind, (config, secret) in demo_integrations(simulator_url).items():
            config = json.loads(json.dumps(config).replace("/demo-", f"/{run}-"))
            integration_id = await conn.fetchval(
                "INSERT INTO integration_config (org_id, integration_type, check_interval_seconds,"
                " config) VALUES ($1, $2, 900, $3) RETURNING id",
                org,
                kind,
                config,
            )
            payload = {name: SECRETS[name] for name in (secret or {"bearerToken": ""})}
            await credentials.store(
                conn, vault, org_id=org, integration_id=integration_id, payload=payload
            )
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(events.ALL_ORGS_CHANNEL)
    async with httpx.AsyncClient(base_url=simulator_url, timeout=5) as http:
        for kind, mode in MODES.items():
            await http.put(f"/_control/{run}-{kind}", json=mode)
        runner = Runner(
            pool=pool,
            checks=CheckContext(
                http=http, credentials=VaultCredentialSource(pool, vault), tokens=TokenCache()
            ),
            redis=redis,
            timeout_seconds=5,
        )
        caplog.set_level(logging.DEBUG)

        with structlog.testing.capture_logs() as logs:
            outcomes = await run_health_checks(runner, org, trigger="manual")

    published: list[str] = []
    for _ in range(30):
        if len(published) == len(MODES):
            break
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            published.append(message["data"].decode())
    await pubsub.aclose()
    await redis.aclose()
    stored = await pool.fetch(
        "SELECT s.*, h.error_message AS history_message FROM integration_health_status s "
        "JOIN health_check_history h USING (org_id, integration_type) WHERE s.org_id = $1",
        org,
    )

    assert len(outcomes) == 6
    assert {o.result.status.value for o in outcomes} == {"unreachable"}
    assert {o.result.error.category.value for o in outcomes if o.result.error} == {"AUTH"}
    assert len(published) == 6
    haystack = "\n".join(
        [
            caplog.text,
            repr(logs),
            repr([o.result for o in outcomes]),
            *published,
            *(repr(dict(r)) for r in stored),
        ]
    )
    for name, value in SECRETS.items():
        assert value not in haystack, f"{name} leaked"

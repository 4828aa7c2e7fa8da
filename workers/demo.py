"""The scripted demo scenario `ihm up` plays against the simulator.

Every step sets the simulator's failure modes for the demo org's providers
and asks for a check of the org, so a newcomer sees statuses change (an auth
failure, a rate limit, an outage and its recovery) within a minute.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import httpx
import structlog
from arq import create_pool

from workers.main import redis_settings

log = structlog.get_logger(__name__)

STEP_SECONDS = 15

# Each step: the modes that change, as (integration type, mode, params).
SCENARIO: list[list[tuple[str, str, dict[str, int]]]] = [
    [
        (k, "ok", {})
        for k in ("http", "slack", "gmail", "google_calendar", "xledger", "dynamics365")
    ],
    [("xledger", "auth", {})],
    [("slack", "rate_limited", {"retryAfter": 60})],
    [("dynamics365", "server_error", {"status": 503}), ("google_calendar", "missing_scope", {})],
    [("dynamics365", "ok", {}), ("slack", "ok", {})],
    [("xledger", "ok", {}), ("gmail", "expired_token", {}), ("google_calendar", "ok", {})],
    [("http", "slow", {"ms": 6000})],
    [("http", "ok", {}), ("gmail", "ok", {})],
]


async def play(simulator_url: str, redis_url: str, org_id: str, stop: threading.Event) -> None:
    queue = await create_pool(redis_settings(redis_url))
    try:
        async with httpx.AsyncClient(base_url=simulator_url, timeout=5) as sim:
            step = 0
            while not stop.is_set():
                for kind, mode, params in SCENARIO[step % len(SCENARIO)]:
                    await sim.put(f"/_control/demo-{kind}", json={"mode": mode, **params})
                slot = datetime.now(UTC).replace(microsecond=0).isoformat()
                await queue.enqueue_job(
                    "check_org", org_id, trigger="scheduled", _job_id=f"demo:{org_id}:{slot}"
                )
                step += 1
                for _ in range(STEP_SECONDS * 10):
                    if stop.is_set():
                        break
                    await asyncio.sleep(0.1)
    except (httpx.HTTPError, OSError) as exc:
        log.warning("demo_scenario_stopped", error=type(exc).__name__)
    finally:
        await queue.aclose()


def start(
    simulator_url: str, redis_url: str, org_id: str
) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(play(simulator_url, redis_url, org_id, stop)),
        name="ihm-demo",
        daemon=True,
    )
    thread.start()
    return thread, stop

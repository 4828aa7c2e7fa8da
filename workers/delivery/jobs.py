"""The delivery jobs, for `workers.main` to register:

- `FUNCTIONS`: `test_channel(org_id, channel_id) -> bool` (the `testNotificationChannel`
  mutation waits for it) and `dispatch_outbox`, which the alerting engine may enqueue
  right after committing an alert to deliver without waiting for the next tick;
- `CRON_JOBS`: the dispatcher every 5 seconds and a daily prune of finished messages;
- `startup(ctx)`: optional (the jobs set themselves up on first use); call it from
  `on_startup` after `settings`, `pool` and `http` are in ctx.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from arq import cron, func

from db import outbox as repo
from db.scope import as_service
from db.vault import Vault
from workers.delivery.outbox import Deliverer, dispatch_due, send_test_message
from workers.delivery.redaction import install_log_guards

KEEP_FINISHED = timedelta(days=30)
# For a kick after commit: `enqueue_job("dispatch_outbox", _job_id=DISPATCH_JOB_ID)`; kicks
# arriving while one is queued or running fold into it (arq refuses a duplicate job id).
DISPATCH_JOB_ID = "delivery:dispatch"


def startup(ctx: dict[str, Any]) -> None:
    """Build the worker's Deliverer (vault from IHM_VAULT_KEYS) and guard the log lines."""
    install_log_guards()
    ctx["deliverer"] = _build(ctx)


def _build(ctx: dict[str, Any]) -> Deliverer:
    settings = ctx["settings"]
    smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    return Deliverer(
        pool=ctx["pool"],
        vault=Vault([(k.key_id, k.key) for k in settings.vault_keys]),
        http=ctx["http"],
        smtp_url=smtp_url,
        smtp_sender=settings.smtp_sender,
    )


def deliverer_of(ctx: dict[str, Any]) -> Deliverer:
    deliverer = ctx.get("deliverer")
    if not isinstance(deliverer, Deliverer):
        startup(ctx)
        deliverer = ctx["deliverer"]
    return deliverer


async def dispatch_outbox(ctx: dict[str, Any]) -> dict[str, int]:
    stats = await dispatch_due(deliverer_of(ctx))
    return {
        "claimed": stats.claimed,
        "delivered": stats.delivered,
        "retried": stats.retried,
        "failed": stats.failed,
    }


async def test_channel(ctx: dict[str, Any], org_id: str, channel_id: str) -> bool:
    """A real test message through the channel now; True when it was delivered."""
    return await send_test_message(deliverer_of(ctx), UUID(org_id), UUID(channel_id))


async def prune_outbox(ctx: dict[str, Any]) -> int:
    async with as_service(ctx["pool"]) as conn:
        return await repo.prune(conn, older_than=datetime.now(UTC) - KEEP_FINISHED)


FUNCTIONS = [
    # The mutation waits about 20 s: a test that a restart interrupted is not run again.
    # Timeouts stay short: arq makes a dead worker's jobs wait for the longest job timeout
    # of all (plus 10 s) before another worker takes them over.
    func(test_channel, name="test_channel", max_tries=1, timeout=30, keep_result=60),
    func(dispatch_outbox, name="dispatch_outbox", max_tries=1, timeout=30, keep_result=0),
]

CRON_JOBS = [
    # Overlapping runs (a slow batch, several workers) skip each other's rows (SKIP LOCKED);
    # the timeout stays under the lease, so a stuck run's messages are retried, not doubled.
    cron(
        dispatch_outbox,
        name="delivery_dispatch",
        second=set(range(0, 60, 5)),
        unique=True,
        timeout=30,
    ),
    cron(prune_outbox, name="delivery_prune", hour={4}, minute={23}, unique=True),
]

"""Stopping an arq worker that a test started as a task."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def stop_worker(task: asyncio.Task[Any], worker: Any) -> None:
    """Cancel the worker's run and close it.

    arq's `close()` gathers the tasks of jobs in flight; a cron job that had just started
    when the run was cancelled is cancelled too, and the gather re-raises that
    cancellation. It is the one being asked for here, so it is not an error.
    """
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(asyncio.CancelledError):
        await worker.close()

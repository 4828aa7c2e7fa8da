"""Sharing one execution among identical subscriptions, and the end of a stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from schema.broadcast import _EXPIRED, Expired, StatusBroadcast, _push
from schema.shared_events import share


async def test_a_subscriber_leaving_mid_execution_does_not_cancel_it_for_the_others() -> None:
    results: dict[tuple[Any, ...], Any] = {}
    release = asyncio.Event()
    runs = 0

    async def execute() -> str:
        nonlocal runs
        runs += 1
        await release.wait()
        return "result"

    async def subscriber() -> str:
        result: str = await share(results, ("k",), execute)
        return result

    first = asyncio.create_task(subscriber())
    second = asyncio.create_task(subscriber())
    await asyncio.sleep(0.01)
    first.cancel()  # the first subscriber closes its tab
    release.set()

    assert await second == "result"
    assert await share(results, ("k",), execute) == "result"
    assert runs == 1
    with pytest.raises(asyncio.CancelledError):
        await first


def test_a_full_queue_never_drops_the_end_of_a_stream() -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(2)
    _push(queue, _EXPIRED)
    _push(queue, {"n": 1})
    _push(queue, {"n": 2})  # full: the oldest goes, unless it is the marker

    kept = [queue.get_nowait() for _ in range(queue.qsize())]

    assert any(item is _EXPIRED for item in kept)


async def test_a_stream_reading_past_its_end_stops_even_without_the_marker() -> None:
    broadcast = StatusBroadcast("redis://127.0.0.1:1/0")  # never connected: queues only
    loop = asyncio.get_running_loop()
    stream = broadcast.events("channel", until=loop.time() + 3600)
    reading = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)
    (queue,) = broadcast._queues["channel"]
    _push(queue, {"n": 1})
    assert await reading == {"n": 1}

    late = broadcast.events("late", until=loop.time() - 1)
    reading = asyncio.create_task(anext(late))
    await asyncio.sleep(0)
    (queue,) = broadcast._queues["late"]
    _push(queue, {"n": 2})  # arrives after `until`, before the timer's marker is read
    with pytest.raises(Expired):
        await reading
    await stream.aclose()

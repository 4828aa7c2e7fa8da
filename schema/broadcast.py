"""Redis pub/sub fan-out for subscriptions, through `broadcaster`, kept alive.

broadcaster 0.3.1 never reconnects: after a Redis restart its listener task
dies quietly and every subscriber waits forever. `StatusBroadcast` owns the
`Broadcast`, watches its listener, and on failure builds a new one and
re-subscribes every channel that still has listeners; subscribers keep their
queue and simply start receiving again. Events published while Redis was
down are gone (they are live updates; every one of them is also in Postgres).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

import structlog
from broadcaster import Broadcast
from prometheus_client import Counter, Gauge

log = structlog.get_logger(__name__)

QUEUE_SIZE = 1000
WATCH_INTERVAL_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 5.0
# Bounds on talking to a Redis that may be gone, so the watchdog (which holds the lock
# that subscribing and unsubscribing take) never waits on a dead socket for long.
CONNECT_TIMEOUT_SECONDS = 2.0
TEARDOWN_SECONDS = 2.0

SUBSCRIBERS = Gauge("ihm_subscriptions_active", "Open GraphQL subscription streams")
RECONNECTS = Counter("ihm_broadcast_reconnects_total", "Reconnections of the Redis listener")
DROPPED = Counter("ihm_broadcast_dropped_total", "Events dropped for slow subscribers")


class Expired(Exception):
    """A stream's `until` has passed."""


_EXPIRED: dict[str, Any] = {}  # the marker `until` puts into a stream's queue


def _push(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    if queue.full():
        DROPPED.inc()
        oldest = queue.get_nowait()  # drop the oldest: a live view wants the latest
        if oldest is _EXPIRED:  # ...but never the end of a stream
            queue.put_nowait(oldest)
            return
    queue.put_nowait(event)


def _reap(task: asyncio.Task[Any] | None) -> None:
    """Retrieve a finished task's exception, so asyncio does not log it as never retrieved
    (the listener's ConnectionError is exactly what the watchdog acts on)."""
    if task is not None and task.done() and not task.cancelled():
        task.exception()


class StatusBroadcast:
    def __init__(self, url: str) -> None:
        self._url = url
        self._broadcast: Broadcast | None = None
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.connected = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Connect now if Redis answers; otherwise the watchdog keeps trying."""
        try:
            await self._connect()
        except Exception as exc:
            log.warning("broadcast_not_connected_at_start", error=type(exc).__name__)
            await self._teardown()
        self._watchdog = asyncio.create_task(self._watch(), name="broadcast-watchdog")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self._teardown()

    async def _connect(self) -> None:
        broadcast = Broadcast(self._url)
        try:
            # broadcaster sets no connect timeout: an unreachable host would hold the
            # lock for the OS's TCP timeout.
            await asyncio.wait_for(broadcast.connect(), CONNECT_TIMEOUT_SECONDS)
        except BaseException:
            # The backend starts its listener task before it connects: without this,
            # every failed attempt during an outage would leave a task and a client behind.
            await self._close_backend(broadcast)
            raise
        self._broadcast = broadcast
        for channel in list(self._queues):
            self._start_pump(channel)
        self.connected.set()

    async def _teardown(self) -> None:
        self.connected.clear()
        pumps, self._pumps = list(self._pumps.values()), {}
        for pump in pumps:
            pump.cancel()
        if pumps:
            # A cancelled pump unsubscribes on its way out, through a connection that may
            # be dead: wait a little, not for ever (it ends on its own).
            await asyncio.wait(pumps, timeout=TEARDOWN_SECONDS)
        for pump in pumps:
            if pump.done():
                _reap(pump)
            else:
                pump.add_done_callback(_reap)
        broadcast, self._broadcast = self._broadcast, None
        if broadcast is not None:
            # Not broadcast.disconnect(): it re-raises a dead listener's error instead of
            # closing the backend, which would leak its connections.
            listener: asyncio.Task[None] | None = getattr(broadcast, "_listener_task", None)
            if listener is not None:
                listener.cancel()
            await self._close_backend(broadcast)
            _reap(listener)

    @staticmethod
    async def _close_backend(broadcast: Broadcast) -> None:
        backend = broadcast._backend
        with contextlib.suppress(Exception):
            await asyncio.wait_for(backend.disconnect(), TEARDOWN_SECONDS)
        _reap(getattr(backend, "_listener", None))

    def _healthy(self) -> bool:
        broadcast = self._broadcast
        if broadcast is None:
            return False
        # The outer listener and the Redis backend's listener both die with Redis.
        tasks = [
            getattr(broadcast, "_listener_task", None),
            getattr(getattr(broadcast, "_backend", None), "_listener", None),
        ]
        if any(t is not None and t.done() for t in tasks):
            return False
        return not any(p.done() for p in self._pumps.values())

    async def _watch(self) -> None:
        backoff = 0.1
        while True:
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)
            if self._healthy():
                backoff = 0.1
                continue
            log.warning("broadcast_listener_lost", channels=len(self._queues))
            async with self._lock:
                await self._teardown()
                try:
                    await self._connect()
                    reconnected = True
                except Exception as exc:  # Redis still away: try again later
                    log.warning("broadcast_reconnect_failed", error=type(exc).__name__)
                    await self._teardown()
                    reconnected = False
            if not reconnected:
                # Outside the lock: subscribers come and go meanwhile, and are picked up
                # by the next successful connect.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            RECONNECTS.inc()
            log.info("broadcast_reconnected", channels=len(self._queues))

    # -- fan-out ------------------------------------------------------------

    def _start_pump(self, channel: str) -> None:
        if self._broadcast is not None and channel not in self._pumps:
            self._pumps[channel] = asyncio.create_task(
                self._pump(self._broadcast, channel), name=f"broadcast:{channel}"
            )

    async def _pump(self, broadcast: Broadcast, channel: str) -> None:
        async with broadcast.subscribe(channel) as subscriber:
            async for event in subscriber:  # type: ignore[union-attr]
                if event is None:
                    return
                try:
                    payload = json.loads(event.message)
                except ValueError:
                    payload = None
                if not isinstance(payload, dict):
                    log.warning("broadcast_bad_message", channel=channel)
                    continue
                for queue in list(self._queues.get(channel, ())):
                    _push(queue, payload)

    async def events(
        self, channel: str, *, counted: bool = True, until: float | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every event published on `channel` from now on, until the caller stops.

        `until` (event loop time): then `Expired` is raised (one timer per stream, not a
        timeout per event). `counted=False`: the API's own listener, not a client's."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        async with self._lock:
            self._queues.setdefault(channel, set()).add(queue)
            self._start_pump(channel)
        timer = (
            asyncio.get_running_loop().call_at(until, _push, queue, _EXPIRED)
            if until is not None
            else None
        )
        gauge = SUBSCRIBERS if counted else None
        if gauge is not None:
            gauge.inc()
        loop = asyncio.get_running_loop()
        try:
            while True:
                event = await queue.get()
                # The timer's marker, or a stream so far behind that it reads past `until`.
                if event is _EXPIRED or (until is not None and loop.time() >= until):
                    raise Expired
                yield event
        finally:
            if timer is not None:
                timer.cancel()
            if gauge is not None:
                gauge.dec()
            async with self._lock:
                listeners = self._queues.get(channel, set())
                listeners.discard(queue)
                if not listeners:
                    self._queues.pop(channel, None)
                    pump = self._pumps.pop(channel, None)
                    if pump is not None:
                        pump.cancel()  # it unsubscribes on its way out
                        pump.add_done_callback(_reap)

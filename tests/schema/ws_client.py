"""A small GraphQL-over-WebSocket client for tests (graphql-transport-ws and graphql-ws).

It speaks to a real server through `websockets`, keeps messages that arrive for
other operations until they are asked for, and answers the server's pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class Closed(Exception):
    """The server closed the socket; `code` and `reason` say how."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class GqlSocket:
    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._ids = 0
        self._pending: deque[dict[str, Any]] = deque()

    # -- sending ------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """connection_init; returns the server's connection_ack (or raises Closed)."""
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive(types={"connection_ack"})

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._ids += 1
        op_id = str(self._ids)
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": op_id, "type": kind, "payload": payload})
        return op_id

    async def stop(self, op_id: str) -> None:
        kind = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.send({"id": op_id, "type": kind})

    # -- receiving ----------------------------------------------------------

    async def receive(
        self, op_id: str | None = None, *, types: set[str] | None = None, within: float = 5
    ) -> dict[str, Any]:
        """The next message for `op_id` (and of one of `types`), within `within` seconds."""

        def wanted(message: dict[str, Any]) -> bool:
            if op_id is not None and message.get("id") != op_id:
                return False
            return types is None or message.get("type") in types

        for message in list(self._pending):
            if wanted(message):
                self._pending.remove(message)
                return message
        async with asyncio.timeout(within):
            while True:
                message = await self._read()
                if wanted(message):
                    return message
                self._pending.append(message)

    async def data(self, op_id: str, *, within: float = 5) -> dict[str, Any]:
        """The `data` of the next event of `op_id`; fails on an error or completion."""
        kind = "next" if self.protocol == TRANSPORT_WS else "data"
        message = await self.receive(op_id, within=within)
        assert message["type"] == kind, message
        assert not message["payload"].get("errors"), message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def nothing_for(self, op_id: str, seconds: float) -> None:
        """Assert that no message for `op_id` arrives within `seconds`."""
        with contextlib.suppress(TimeoutError):
            message = await self.receive(op_id, within=seconds)
            raise AssertionError(f"unexpected message: {message}")

    async def closed(self, *, within: float = 5) -> Closed:
        """Wait until the server closes the socket, ignoring what it says before."""
        try:
            async with asyncio.timeout(within):
                while True:
                    await self._read()
        except Closed as closed:
            return closed

    async def _read(self) -> dict[str, Any]:
        while True:
            try:
                raw = await self.ws.recv()
            except ConnectionClosed as exc:
                rcvd = exc.rcvd
                raise Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else None) from None
            message: dict[str, Any] = json.loads(raw)
            kind = message.get("type")
            if kind == "ping":
                await self.send({"type": "pong"})
            elif kind not in ("pong", "ka"):
                return message


@contextlib.asynccontextmanager
async def gql_socket(
    url: str, *, protocol: str = TRANSPORT_WS, headers: dict[str, str] | None = None
) -> AsyncIterator[GqlSocket]:
    async with connect(
        url,
        subprotocols=[Subprotocol(protocol)],
        additional_headers=headers,
        proxy=None,
        open_timeout=5,
        close_timeout=2,
    ) as ws:
        assert ws.subprotocol == protocol
        yield GqlSocket(ws, protocol)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

"""/graphql over HTTP and WebSocket, with authentication before anything runs."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError

from resolvers.errors import ApiError, Unauthenticated
from schema.context import Context, Services


class _IdempotentCloseAdapter(ASGIWebSocketAdapter):
    """We close with our own code (4401) before Strawberry closes with its 4403."""

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            await self.ws.close(code=code, reason=reason)


class GraphQLView(GraphQL):
    websocket_adapter_class = _IdempotentCloseAdapter

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services

    async def get_context(  # type: ignore[override]
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        context = Context(services=self.services, request=request, response=response)
        header = request.headers.get("authorization")
        if isinstance(request, WebSocket) and not header:
            return context  # the token may come in connection_init
        try:
            context.principal_ = await self.services.verifier.verify_header(header)
        except ApiError as exc:
            context.auth_error = exc
        return context

    async def on_ws_connect(self, context: Context) -> None:  # type: ignore[override]
        if context.principal_ is None and context.auth_error is None:
            params = context.connection_params or {}
            header = params.get("Authorization") or params.get("authorization")
            try:
                context.principal_ = await self.services.verifier.verify_header(
                    header if isinstance(header, str) else None
                )
            except ApiError as exc:
                context.auth_error = exc
        if context.principal_ is None:
            websocket = context.request
            assert isinstance(websocket, WebSocket)
            error = context.auth_error or Unauthenticated("Authentication required.")
            await websocket.close(code=4401, reason=error.message[:120])
            raise ConnectionRejectionError({"message": error.message})
        if context.principal_.role == "service":
            websocket = context.request
            assert isinstance(websocket, WebSocket)
            await websocket.close(code=4403, reason="The service role cannot subscribe.")
            raise ConnectionRejectionError({"message": "The service role cannot subscribe."})

    def decode_json(self, data: str | bytes) -> object:
        return json.loads(data)


def bad_request(message: str, status: int = 400) -> Response:
    """A GraphQL-shaped error for requests rejected before GraphQL sees them."""
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]},
        status_code=status,
    )

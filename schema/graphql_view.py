"""/graphql over HTTP and WebSocket, with authentication before anything runs."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from typing import Any, NoReturn

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.exceptions import NonJsonMessageReceived, WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult

from resolvers.auth import Principal
from resolvers.errors import ApiError, Unauthenticated
from schema.context import Context, Services
from schema.response_cache import CACHEABLE_ROOTS, ResponseCache

# The contract's codes for the HTTP errors Strawberry raises before GraphQL runs.
_HTTP_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT"}


# Event data shared by identical subscriptions (schema/shared_events.py), encoded once:
# data object -> (the object, kept alive so its id is not reused; its JSON).
_ENCODED_EVENTS: OrderedDict[int, tuple[object, str]] = OrderedDict()
_ENCODED_EVENTS_KEPT = 256


def _shared_event_json(message: Mapping[str, object]) -> str | None:
    """An event message (`next`, or graphql-ws's `data`) carrying only data, with the
    data's JSON made once for all the subscriptions that share it; None otherwise."""
    payload = message.get("payload")
    if message.get("type") not in ("next", "data") or not isinstance(payload, dict):
        return None
    data = payload.get("data")
    if len(payload) != 1 or not isinstance(data, dict):
        return None
    found = _ENCODED_EVENTS.get(id(data))
    if found is None or found[0] is not data:
        found = (data, json.dumps(data, separators=(",", ":")))
        _ENCODED_EVENTS[id(data)] = found
        if len(_ENCODED_EVENTS) > _ENCODED_EVENTS_KEPT:
            _ENCODED_EVENTS.popitem(last=False)
    kind = message["type"]
    return (
        f'{{"id":{json.dumps(message.get("id"))},"type":"{kind}","payload":{{"data":{found[1]}}}}}'
    )


class _WebSocketAdapter(ASGIWebSocketAdapter):
    # We close with our own code (4401, 4403) before Strawberry closes with its own and
    # sends graphql-ws's `connection_error`: after our close, both are no-ops (Starlette
    # would raise, and the rejected connection would end in a server error).

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            await self.ws.close(code=code, reason=reason)

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        text = _shared_event_json(message)
        if text is None:
            await super().send_json(message)
            return
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        # Strawberry's protocol handlers index messages and payloads as objects: anything
        # else (`[]`, `"x"`, `"payload": 1`) would escape them as a TypeError and drop the
        # socket with a server error. Treat it as the malformed message it is instead
        # (graphql-transport-ws closes with 4400; graphql-ws ignores it).
        async for message in super().iter_json(ignore_parsing_errors=ignore_parsing_errors):
            if isinstance(message, dict) and message.get("payload", {}) is None:
                del message["payload"]  # `"payload": null` is the same as none
            if isinstance(message, dict) and isinstance(message.get("payload", {}), dict):
                yield message
            elif not ignore_parsing_errors:
                raise NonJsonMessageReceived


_ENCODED = "_ihm_encoded"


class _Encoded(dict[str, Any]):
    """A response's data with its JSON body, made once per result."""

    body: str | bytes = ""


class GraphQLView(GraphQL):
    websocket_adapter_class = _WebSocketAdapter

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.cache = ResponseCache()

    async def execute_single(  # type: ignore[override]
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Health reads through the response cache (schema/response_cache.py)."""
        query, name = request_data.query, request_data.operation_name
        kind = self.cache.kind(query, name)
        key = (
            self.cache.key(context.principal_, query, name, request_data.variables)
            if kind == "cacheable" and query
            else None
        )

        async def execute() -> ExecutionResult:
            result: ExecutionResult = await super(GraphQLView, self).execute_single(
                request=request,
                request_adapter=request_adapter,
                sub_response=sub_response,
                context=context,  # type: ignore[arg-type]
                root_value=root_value,
                request_data=request_data,
            )
            return result

        if key is None:
            result = await execute()
            if kind == "mutation":
                self.cache.clear()
            return result
        result, shared = await self.cache.through(key, execute, lambda r: not r.errors)
        if shared:
            sub_response.headers["X-IHM-Cache"] = "hit"
        return result

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        """A cached result is turned into its response body once, not on every hit."""
        encoded = getattr(result, _ENCODED, None)
        if encoded is not None:
            return encoded
        data = await super().process_result(request, result)
        if not result.errors:
            encoded = _Encoded(data)
            encoded.body = super().encode_json(data)
            setattr(result, _ENCODED, encoded)
            return encoded
        return data

    def encode_json(self, data: object) -> str | bytes:
        if isinstance(data, _Encoded):
            return data.body
        return super().encode_json(data)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive=receive)
        response = await self._cached_answer(request)
        if response is None:
            # Strawberry answers a request it cannot read (bad JSON, wrong content type)
            # with plain text: give clients the GraphQL error shape they parse elsewhere.
            try:
                response = await self.run(request)
            except HTTPException as exc:
                response = bad_request(exc.reason, exc.status_code)
        await response(scope, receive, send)

    async def _cached_answer(self, request: Request) -> Response | None:
        """A POSTed health read already in the cache, answered without running the
        GraphQL pipeline again; None for anything else (the normal path handles it, and
        gives every error its proper answer). The token is verified as on every request."""
        if request.method != "POST" or not request.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return None
        body = await request.body()
        if not any(root.encode() in body for root in CACHEABLE_ROOTS):
            return None  # not a health read: parse it once, on the normal path
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        query, name, variables = data.get("query"), data.get("operationName"), data.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return None
        try:  # before anything parses the document
            principal = await self.services.verifier.verify_header(
                request.headers.get("authorization")
            )
        except ApiError as exc:
            request.state.auth = exc  # get_context does not verify the token again
            return None
        request.state.auth = principal
        if not isinstance(query, str) or self.cache.kind(query, name) != "cacheable":
            return None
        key = self.cache.key(principal, query, name, variables)
        found = self.cache.get(key, count_miss=False) if key is not None else None
        encoded = getattr(found, _ENCODED, None)
        if encoded is None:
            return None
        return Response(encoded.body, media_type="application/json", headers={"X-IHM-Cache": "hit"})

    def parse_json(self, data: str | bytes) -> Any:
        """JSON read from an HTTP request (its body, or GET's `variables`)."""
        try:
            decoded = super().parse_json(data)
        except UnicodeDecodeError:
            raise HTTPException(400, "The request body is not UTF-8 encoded JSON.") from None
        if not isinstance(decoded, dict | list):
            # Strawberry reads the body as an object (or a batch): `"x"`, `1` or `null`
            # would fail inside it as a server error.
            raise HTTPException(400, "The request body must be a JSON object.")
        return decoded

    async def get_context(  # type: ignore[override]
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        context = Context(services=self.services, request=request, response=response)
        header = request.headers.get("authorization")
        if isinstance(request, WebSocket) and not header:
            return context  # the token may come in connection_init
        # Already verified by _cached_answer when it looked the request up.
        verified = getattr(request.state, "auth", None)
        if isinstance(verified, Principal):
            context.principal_ = verified
        elif isinstance(verified, ApiError):
            context.auth_error = verified
        else:
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
            error = context.auth_error or Unauthenticated("Authentication required.")
            await self._reject(context, 4401, error.message)
        if context.principal_.role == "service":
            await self._reject(context, 4403, "The service role cannot subscribe.")

    async def _reject(self, context: Context, code: int, message: str) -> NoReturn:
        websocket = context.request
        assert isinstance(websocket, WebSocket)
        if await self.pick_websocket_subprotocol(websocket) == GRAPHQL_WS_PROTOCOL:
            # graphql-ws says why in a message; the close code alone is ours.
            await websocket.send_json({"type": "connection_error", "payload": {"message": message}})
        await websocket.close(code=code, reason=message[:120])
        raise ConnectionRejectionError({"message": message})


def bad_request(message: str, status: int = 400) -> Response:
    """A GraphQL-shaped error for requests rejected before GraphQL sees them."""
    code = _HTTP_CODES.get(status, "INTERNAL_SERVER_ERROR" if status >= 500 else "BAD_USER_INPUT")
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
    )

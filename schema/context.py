"""The per-request context: the caller, the shared services, the DataLoaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import asyncpg
import httpx
import strawberry
from arq.connections import ArqRedis
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from db.scope import as_caller
from db.vault import Vault
from resolvers.auth import Principal, TokenVerifier
from resolvers.errors import ApiError, Unauthenticated
from settings import Settings

if TYPE_CHECKING:
    from schema.broadcast import StatusBroadcast
    from schema.loaders import Loaders

T = TypeVar("T")


@dataclass
class Services:
    """Created once in the app's lifespan."""

    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    queue: ArqRedis
    verifier: TokenVerifier
    vault: Vault
    broadcast: StatusBroadcast
    # For the few calls the API makes itself (the OAuth code exchange).
    http: httpx.AsyncClient


@dataclass
class Context:
    services: Services
    request: Request | WebSocket
    response: Response | WebSocket | None = None
    principal_: Principal | None = None
    auth_error: ApiError | None = None
    # Set by Strawberry from the WebSocket connection_init payload.
    connection_params: dict[str, Any] | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def principal(self) -> Principal:
        if self.principal_ is None:
            raise self.auth_error or Unauthenticated("Authentication required.")
        return self.principal_

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            from schema.loaders import Loaders

            self._loaders = Loaders(self)
        return self._loaders

    async def as_caller(
        self, org_id: UUID | None, work: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """Run `work` in a transaction as ihm_api with the caller's claims for `org_id`."""
        async with as_caller(self.services.pool, self.principal.claims_for(org_id)) as conn:
            return await work(conn)


Info = strawberry.Info[Context, None]

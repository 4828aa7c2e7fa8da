"""What resolvers need from a request: the caller and a way to run SQL as the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar
from uuid import UUID

import asyncpg

from resolvers.auth import Principal

T = TypeVar("T")


class Caller(Protocol):
    @property
    def principal(self) -> Principal: ...

    async def as_caller(
        self, org_id: UUID | None, work: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """Run `work` as ihm_api, the caller's claims acting on `org_id` (RLS applies)."""
        ...

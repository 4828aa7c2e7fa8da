"""Per-request DataLoaders: nested fields of many integrations cost one query each."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import asyncpg
from strawberry.dataloader import DataLoader

from db import alerts, health, trends

if TYPE_CHECKING:
    from schema.context import Context

V = TypeVar("V")
Key = tuple[Any, ...]
Fetch = Callable[[asyncpg.Connection, UUID, list[str], Key], Awaitable[dict[str, Any]]]

MAX_HISTORY = 96
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _grouped(context: Context, fetch: Fetch, empty: Callable[[], Any]) -> DataLoader[Key, Any]:
    """A loader keyed by (org_id, integration_type, *extra): one query per (org, extra)."""

    async def load(keys: Sequence[Key]) -> list[Any]:
        groups: dict[tuple[UUID, Key], list[str]] = defaultdict(list)
        for org_id, kind, *rest in keys:
            groups[(org_id, tuple(rest))].append(kind)
        found: dict[Key, Any] = {}
        for (org_id, extra), kinds in groups.items():

            def work(
                conn: asyncpg.Connection,
                org: UUID = org_id,
                names: list[str] = kinds,
                more: Key = extra,
            ) -> Awaitable[dict[str, Any]]:
                return fetch(conn, org, names, more)

            by_kind = await context.as_caller(org_id, work)
            for kind in kinds:
                found[(org_id, kind, *extra)] = by_kind.get(kind, empty())
        return [found[tuple(k)] for k in keys]

    return DataLoader(load_fn=load)


class Loaders:
    def __init__(self, context: Context) -> None:
        now = datetime.now(UTC)

        async def history(
            conn: asyncpg.Connection, org: UUID, kinds: list[str], extra: Key
        ) -> dict[str, Any]:
            (hours,) = extra  # None: the whole (capped) history
            since = EPOCH if hours is None else now - timedelta(hours=hours)
            return await health.history_many(conn, org, kinds, since=since, limit=MAX_HISTORY)

        async def trend(
            conn: asyncpg.Connection, org: UUID, kinds: list[str], extra: Key
        ) -> dict[str, Any]:
            (window,) = extra
            return await trends.trends(conn, org, kinds, window, now=now)

        async def active_alerts(
            conn: asyncpg.Connection, org: UUID, kinds: list[str], _: Key
        ) -> dict[str, Any]:
            return await alerts.active_for(conn, org, kinds)

        async def current(
            conn: asyncpg.Connection, org: UUID, kinds: list[str], _: Key
        ) -> dict[str, Any]:
            return await health.org_health_for(conn, org, kinds)

        # Keys: (org_id, integration_type, hours or None)
        self.history = _grouped(context, history, list)
        # Keys: (org_id, integration_type, window name)
        self.trend = _grouped(context, trend, lambda: None)
        # Keys: (org_id, integration_type)
        self.active_alerts = _grouped(context, active_alerts, list)
        self.health = _grouped(context, current, lambda: None)

"""Live updates: status changes and alert changes, authorized before the first event.

Each resolver authorizes and picks its channel *before* it returns the stream,
so a refusal reaches the client as the protocol's `error` message (nothing was
subscribed) rather than as an event; the stream itself ends when the token
expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import strawberry
from strawberry import UNSET

from resolvers.access import GLOBAL, READ, require, target_org
from resolvers.errors import Unauthenticated
from schema.broadcast import Expired
from schema.context import Info
from schema.inputs import opt
from schema.shared_events import shared
from schema.types.alerts import Alert
from schema.types.health import StatusChange
from workers.events import ALL_ORGS_CHANNEL, alert_channel, org_channel

EXPIRED = "The token has expired: subscribe again with a fresh one."


async def _events(info: Info, channel: str) -> AsyncGenerator[dict[str, Any], None]:
    """Every event published on `channel` until the caller's token expires."""
    remaining = (info.context.principal.expires_at - datetime.now(UTC)).total_seconds()
    if remaining <= 0:
        raise Unauthenticated(EXPIRED)
    until = asyncio.get_running_loop().time() + remaining
    broadcast = info.context.services.broadcast
    async with aclosing(broadcast.events(channel, until=until)) as events:
        try:
            async for event in events:
                yield event
        except Expired:
            raise Unauthenticated(EXPIRED) from None


async def _status_changes(
    info: Info, channel: str, integration_type: str | None, include_unchanged: bool
) -> AsyncGenerator[StatusChange, None]:
    async with aclosing(_events(info, channel)) as events:
        async for event in events:
            if integration_type and event["integrationType"] != integration_type:
                continue
            if not include_unchanged and not event.get("changed"):
                continue
            yield shared(event, StatusChange.from_event)


async def _alert_changes(info: Info, channel: str) -> AsyncGenerator[Alert, None]:
    async with aclosing(_events(info, channel)) as events:
        async for event in events:
            yield shared(event, Alert.from_event)


@strawberry.type
class Subscription:
    # The resolvers are coroutines returning a stream, not generators: their checks run
    # when the client subscribes, and a refusal creates no stream.

    @strawberry.subscription(
        description="Fires when an integration's status changes; with includeUnchanged, after "
        "every completed check. GLOBAL_ADMIN may pass orgId or allOrgs: true."
    )
    async def status_changed(
        self,
        info: Info,
        org_id: UUID | None = UNSET,
        integration_type: str | None = UNSET,
        include_unchanged: bool = False,
        all_orgs: bool = False,
    ) -> AsyncGenerator[StatusChange, None]:
        principal = info.context.principal
        require(principal, READ, "watch health")
        if all_orgs:
            require(principal, GLOBAL, "watch every organization")
            channel = ALL_ORGS_CHANNEL
        else:
            channel = org_channel(target_org(principal, opt(org_id)))
        return _status_changes(info, channel, opt(integration_type), include_unchanged)

    @strawberry.subscription(
        description="Fires when an alert of the org opens, repeats, is acknowledged, dismissed "
        "or resolved."
    )
    async def alert_changed(
        self, info: Info, org_id: UUID | None = UNSET
    ) -> AsyncGenerator[Alert, None]:
        principal = info.context.principal
        require(principal, READ, "watch alerts")
        return _alert_changes(info, alert_channel(target_org(principal, opt(org_id))))

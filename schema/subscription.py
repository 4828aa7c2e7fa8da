"""Live updates: status changes and alert changes, authorized before the first event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import strawberry
from strawberry import UNSET

from resolvers.access import GLOBAL, READ, require, target_org
from resolvers.errors import Unauthenticated
from schema.context import Info
from schema.inputs import opt
from schema.types.alerts import Alert
from schema.types.health import StatusChange
from workers.events import ALL_ORGS_CHANNEL, alert_channel, org_channel


async def _until_expiry(
    info: Info, events: AsyncIterator[dict[str, Any]]
) -> AsyncGenerator[dict[str, Any], None]:
    """Stop the stream when the caller's token expires."""
    deadline = info.context.principal.expires_at
    while True:
        remaining = (deadline - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            raise Unauthenticated("The token has expired: subscribe again with a fresh one.")
        try:
            yield await asyncio.wait_for(anext(events), remaining)
        except TimeoutError:
            continue


@strawberry.type
class Subscription:
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
        events = info.context.services.broadcast.events(channel)
        try:
            async for event in _until_expiry(info, events):
                if integration_type and event["integrationType"] != integration_type:
                    continue
                if not include_unchanged and not event.get("changed"):
                    continue
                yield StatusChange.from_event(event)
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    @strawberry.subscription(
        description="Fires when an alert of the org opens, repeats, is acknowledged, dismissed "
        "or resolved."
    )
    async def alert_changed(
        self, info: Info, org_id: UUID | None = UNSET
    ) -> AsyncGenerator[Alert, None]:
        principal = info.context.principal
        require(principal, READ, "watch alerts")
        channel = alert_channel(target_org(principal, opt(org_id)))
        events = info.context.services.broadcast.events(channel)
        try:
            async for event in _until_expiry(info, events):
                yield Alert.from_event(event)
        finally:
            await events.aclose()  # type: ignore[attr-defined]

"""Configuring integrations: list, save (validated), enable, credentials, remove."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db import credentials, integration_types, integrations, organizations
from db.vault import Vault
from resolvers import audit_trail
from resolvers.access import CONFIGURE, READ, require, target_org
from resolvers.errors import BadUserInput, NotFound
from resolvers.session import Caller
from workers.checks.config import InvalidConfig, config_json, parse_config, parse_credentials

MAX_INTERVAL_SECONDS = 7 * 24 * 3600

Listed = tuple[integrations.Integration, integration_types.IntegrationType, bool]


async def _types(conn: asyncpg.Connection) -> dict[str, integration_types.IntegrationType]:
    return {t.key: t for t in await integration_types.list_all(conn)}


async def list_integrations(caller: Caller, org_id: UUID | None) -> list[Listed]:
    require(caller.principal, READ, "read integrations")
    org = target_org(caller.principal, org_id)

    async def work(conn: asyncpg.Connection) -> list[Listed]:
        kinds = await _types(conn)
        rows = await integrations.list_with_credentials(conn, org)
        return [(row, kinds[row.integration_type], has) for row, has in rows]

    return await caller.as_caller(org, work)


async def _one(conn: asyncpg.Connection, org: UUID, integration_type: str) -> Listed:
    kinds = await _types(conn)
    for row, has in await integrations.list_with_credentials(conn, org):
        if row.integration_type == integration_type:
            return row, kinds[integration_type], has
    raise NotFound(f"No {integration_type!r} integration is configured for this organization.")


async def upsert_integration(
    caller: Caller,
    *,
    integration_type: str,
    org_id: UUID | None,
    enabled: bool,
    monitoring_mode: str,
    check_interval_seconds: int | None,
    config: Any,
) -> Listed:
    require(caller.principal, CONFIGURE, "configure integrations")
    org = target_org(caller.principal, org_id)
    try:
        parsed = parse_config(integration_type, config)
    except InvalidConfig as exc:
        raise BadUserInput(f"Invalid configuration: {exc}", field=exc.field) from None

    async def work(conn: asyncpg.Connection) -> Listed:
        kind = await integration_types.get(conn, integration_type)
        if kind is None:
            raise BadUserInput(
                f"Unknown integration type {integration_type!r}.", field="integrationType"
            )
        # Only a left-out interval means the default: 0 is an interval under the floor.
        interval = (
            kind.default_interval_seconds
            if check_interval_seconds is None
            else check_interval_seconds
        )
        if interval < kind.min_interval_seconds:
            raise BadUserInput(
                f"checkIntervalSeconds must be at least {kind.min_interval_seconds} for "
                f"{kind.display_name}, to spare its rate limits.",
                field="checkIntervalSeconds",
            )
        if interval > MAX_INTERVAL_SECONDS:
            raise BadUserInput(
                f"checkIntervalSeconds must be at most {MAX_INTERVAL_SECONDS} (a week).",
                field="checkIntervalSeconds",
            )
        await organizations.ensure(conn, org)
        await integrations.upsert(
            conn,
            org,
            integration_type,
            enabled=enabled,
            monitoring_mode=monitoring_mode,
            check_interval_seconds=interval,
            config=config_json(parsed),
        )
        await audit_trail.record(
            conn,
            caller,
            org,
            "upsertIntegration",
            {
                "integrationType": integration_type,
                "enabled": enabled,
                "monitoringMode": monitoring_mode,
                "checkIntervalSeconds": interval,
                "config": config_json(parsed),
            },
        )
        return await _one(conn, org, integration_type)

    return await caller.as_caller(org, work)


async def set_enabled(
    caller: Caller, integration_type: str, enabled: bool, org_id: UUID | None
) -> Listed:
    require(caller.principal, CONFIGURE, "configure integrations")
    org = target_org(caller.principal, org_id)

    async def work(conn: asyncpg.Connection) -> Listed:
        if await integrations.set_enabled(conn, org, integration_type, enabled) is None:
            raise NotFound(f"No {integration_type!r} integration is configured.")
        await audit_trail.record(
            conn,
            caller,
            org,
            "setIntegrationEnabled",
            {"integrationType": integration_type, "enabled": enabled},
        )
        return await _one(conn, org, integration_type)

    return await caller.as_caller(org, work)


async def set_credentials(
    caller: Caller, vault: Vault, integration_type: str, payload: Any, org_id: UUID | None
) -> Listed:
    require(caller.principal, CONFIGURE, "set credentials")
    org = target_org(caller.principal, org_id)
    try:
        secret = parse_credentials(integration_type, payload)
    except InvalidConfig as exc:
        raise BadUserInput(f"Invalid credentials: {exc}", field=exc.field) from None

    async def work(conn: asyncpg.Connection) -> Listed:
        row, _, _ = await _one(conn, org, integration_type)
        await credentials.store(conn, vault, org_id=org, integration_id=row.id, payload=secret)
        # Which fields were set, never their values.
        await audit_trail.record(
            conn,
            caller,
            org,
            "setIntegrationCredentials",
            {"integrationType": integration_type, "fields": sorted(secret)},
        )
        return await _one(conn, org, integration_type)

    return await caller.as_caller(org, work)


async def remove_integration(caller: Caller, integration_type: str, org_id: UUID | None) -> bool:
    require(caller.principal, CONFIGURE, "remove integrations")
    org = target_org(caller.principal, org_id)

    async def work(conn: asyncpg.Connection) -> bool:
        removed = await integrations.remove(conn, org, integration_type)
        if removed:
            await audit_trail.record(
                conn, caller, org, "removeIntegration", {"integrationType": integration_type}
            )
        return removed

    return await caller.as_caller(org, work)


async def integration_type_of(caller: Caller, integration_id: UUID, org_id: UUID | None) -> str:
    """The type key of one of the org's integrations, named by id (REST paths).

    No role check of its own: every org role acts on integrations by type key, and the
    operation it resolves for authorizes (a service may check an integration, not read it).
    """
    org = target_org(caller.principal, org_id)
    configured = await caller.as_caller(org, lambda c: integrations.list_for_org(c, org))
    for row in configured:
        if row.id == integration_id:
            return row.integration_type
    raise NotFound("No such integration.")

"""Adapters' credentials, read from and written to the vault (service role)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg
import structlog

from db import credentials, integrations
from db.scope import as_service
from db.vault import Secret, Vault, VaultError
from workers.checks.context import CredentialsUnavailable

log = structlog.get_logger(__name__)


class VaultCredentialSource:
    def __init__(self, pool: asyncpg.Pool, vault: Vault) -> None:
        self._pool = pool
        self._vault = vault

    @property
    def vault(self) -> Vault:
        return self._vault

    def __repr__(self) -> str:
        return "VaultCredentialSource()"

    async def load(self, org_id: UUID, integration_type: str) -> Secret | None:
        async with self._pool.acquire() as conn:
            try:
                return await credentials.load(
                    conn, self._vault, org_id=org_id, integration_type=integration_type
                )
            except VaultError as exc:
                # The message names the key id and the row, never key material or plaintext.
                log.error(
                    "credentials_unreadable",
                    org_id=str(org_id),
                    integration_type=integration_type,
                    reason=str(exc),
                )
                raise CredentialsUnavailable from None

    async def save(self, org_id: UUID, integration_type: str, payload: dict[str, str]) -> None:
        async with as_service(self._pool) as conn:
            integration = await integrations.get(conn, org_id, integration_type)
            if integration is None:  # removed while its check ran
                return
            await credentials.store(
                conn, self._vault, org_id=org_id, integration_id=integration.id, payload=payload
            )


class OrgCredentials:
    """One org's credentials read once for a run; saves go through to the vault."""

    def __init__(self, source: VaultCredentialSource, found: dict[str, Secret | VaultError]):
        self._source = source
        self._found = found

    def __repr__(self) -> str:
        return f"OrgCredentials(types={sorted(self._found)})"

    async def load(self, org_id: UUID, integration_type: str) -> Secret | None:
        found = self._found.get(integration_type)
        if isinstance(found, VaultError):
            log.error(
                "credentials_unreadable",
                org_id=str(org_id),
                integration_type=integration_type,
                reason=str(found),
            )
            raise CredentialsUnavailable
        return found

    async def save(self, org_id: UUID, integration_type: str, payload: dict[str, str]) -> None:
        await self._source.save(org_id, integration_type, payload)
        # A retry later in the same run reads what was just saved (a refreshed token).
        self._found[integration_type] = Secret(payload)


async def for_integrations(
    source: VaultCredentialSource,
    conn: asyncpg.Connection,
    org_ids: Sequence[UUID],
    integration_ids: Sequence[UUID],
) -> dict[UUID, OrgCredentials]:
    """Each org's credentials for a run (those of the integrations it checks), all read
    in one query."""
    found = await credentials.load_many(conn, source.vault, integration_ids)
    return {org: OrgCredentials(source, found.get(org, {})) for org in org_ids}

"""Integration credentials (integration_credentials): ciphertext only, in and out through the vault.

The API role may write credentials and learn that they exist (`store`,
`info`, `exists`, `delete`), never read them: Postgres refuses it the
ciphertext column. Reading (`load`) and key rotation (`rotate`) are the
worker's, as the service role.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from db.vault import (
    Sealed,
    Secret,
    Vault,
    VaultError,
    channel_secret_aad,
    channel_target_aad,
    credentials_aad,
)


@dataclass(frozen=True)
class CredentialInfo:
    """What anyone may know about stored credentials: that they exist, and since when."""

    integration_id: UUID
    org_id: UUID
    expires_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> CredentialInfo:
        return cls(**dict(row))


# SET lists parameters rather than EXCLUDED columns, and RETURNING nothing, so
# the statement needs no column the API role may not read.
_STORE = """
INSERT INTO integration_credentials (integration_id, org_id, key_id, ciphertext, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (integration_id) DO UPDATE
   SET key_id = $3, ciphertext = $4, expires_at = $5, updated_at = now()
"""
_LOAD = """
SELECT cr.integration_id, cr.key_id, cr.ciphertext
  FROM integration_config c
  JOIN integration_credentials cr ON cr.integration_id = c.id AND cr.org_id = c.org_id
 WHERE c.org_id = $1 AND c.integration_type = $2
"""
_LOAD_MANY = """
SELECT c.org_id, c.integration_type, cr.integration_id, cr.key_id, cr.ciphertext
  FROM integration_config c
  JOIN integration_credentials cr ON cr.integration_id = c.id AND cr.org_id = c.org_id
 WHERE c.id = ANY($1::uuid[])
"""
_INFO = """
SELECT integration_id, org_id, expires_at, updated_at
  FROM integration_credentials WHERE integration_id = $1
"""
_EXISTS = "SELECT EXISTS (SELECT 1 FROM integration_credentials WHERE integration_id = $1)"
_DELETE = "DELETE FROM integration_credentials WHERE integration_id = $1"

# Rotation walks each table in primary-key order (keyset pages), so every row is
# visited once per run even while others write; rows locked elsewhere are
# skipped and left for the next run.
_STALE_CREDENTIALS = """
SELECT integration_id, key_id, ciphertext
  FROM integration_credentials
 WHERE key_id <> $1 AND ($2::uuid IS NULL OR integration_id > $2)
 ORDER BY integration_id
 LIMIT $3
   FOR UPDATE SKIP LOCKED
"""
_RESEAL_CREDENTIALS = """
UPDATE integration_credentials c
   SET key_id = u.key_id, ciphertext = u.ciphertext
  FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS u(integration_id, key_id, ciphertext)
 WHERE c.integration_id = u.integration_id
"""
_STALE_CHANNELS = """
SELECT id, target_key_id, target_ciphertext, secret_key_id, secret_ciphertext
  FROM notification_channels
 WHERE (target_key_id <> $1 OR secret_key_id <> $1) AND ($2::uuid IS NULL OR id > $2)
 ORDER BY id
 LIMIT $3
   FOR UPDATE SKIP LOCKED
"""
# NULL in a column of the batch: that half of the channel was already current.
_RESEAL_CHANNELS = """
UPDATE notification_channels n
   SET target_key_id = coalesce(u.target_key_id, n.target_key_id),
       target_ciphertext = coalesce(u.target_ciphertext, n.target_ciphertext),
       secret_key_id = coalesce(u.secret_key_id, n.secret_key_id),
       secret_ciphertext = coalesce(u.secret_ciphertext, n.secret_ciphertext)
  FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[], $5::bytea[])
    AS u(id, target_key_id, target_ciphertext, secret_key_id, secret_ciphertext)
 WHERE n.id = u.id
"""


def _what(integration_id: UUID) -> str:
    return f"credentials of integration {integration_id}"


async def store(
    conn: asyncpg.Connection,
    vault: Vault,
    *,
    org_id: UUID,
    integration_id: UUID,
    payload: dict[str, Any],
    expires_at: datetime | None = None,
) -> None:
    """Encrypt and save (replacing what was there). Works as the API role."""
    sealed = vault.encrypt(payload, aad=credentials_aad(integration_id))
    await conn.execute(_STORE, integration_id, org_id, sealed.key_id, sealed.ciphertext, expires_at)


async def load(
    conn: asyncpg.Connection, vault: Vault, *, org_id: UUID, integration_type: str
) -> Secret | None:
    """The decrypted credentials of the org's integration of that type; None if none stored.

    Service role only. Raises a `VaultError` when the key is gone or the data was tampered with.
    """
    row = await conn.fetchrow(_LOAD, org_id, integration_type)
    if row is None:
        return None
    integration_id: UUID = row["integration_id"]
    return vault.decrypt(
        Sealed(row["key_id"], row["ciphertext"]),
        aad=credentials_aad(integration_id),
        what=_what(integration_id),
    )


async def load_many(
    conn: asyncpg.Connection, vault: Vault, integration_ids: Sequence[UUID]
) -> dict[UUID, dict[str, Secret | VaultError]]:
    """The stored credentials of these integrations in one query, by org and integration
    type (service role): a run decrypts only what it checks.

    A row that cannot be decrypted maps to its `VaultError`, so one bad row spoils only
    its own integration's check.
    """
    found: dict[UUID, dict[str, Secret | VaultError]] = {}
    for row in await conn.fetch(_LOAD_MANY, list(integration_ids)):
        integration_id: UUID = row["integration_id"]
        try:
            secret: Secret | VaultError = vault.decrypt(
                Sealed(row["key_id"], row["ciphertext"]),
                aad=credentials_aad(integration_id),
                what=_what(integration_id),
            )
        except VaultError as exc:
            secret = exc
        found.setdefault(row["org_id"], {})[row["integration_type"]] = secret
    return found


async def info(conn: asyncpg.Connection, integration_id: UUID) -> CredentialInfo | None:
    """Metadata only (granted to the API role): whether, since when, until when."""
    row = await conn.fetchrow(_INFO, integration_id)
    return CredentialInfo.from_row(row) if row else None


async def exists(conn: asyncpg.Connection, integration_id: UUID) -> bool:
    return bool(await conn.fetchval(_EXISTS, integration_id))


async def delete(conn: asyncpg.Connection, integration_id: UUID) -> bool:
    """True when there were credentials to delete."""
    status: str = await conn.execute(_DELETE, integration_id)
    return status == "DELETE 1"


async def rotate(conn: asyncpg.Connection, vault: Vault, *, batch_size: int = 500) -> int:
    """Re-encrypt every secret not under the vault's current key; return how many.

    Covers integration credentials and notification channels' targets and
    secrets. Service role. Each batch commits on its own (a savepoint inside
    a caller's transaction), so an interrupted run keeps its progress and a
    second run picks up the rest; once everything is current it returns 0.
    A ciphertext the vault cannot open stops the run with a `VaultError`
    naming it: add its key back, then rotate again.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    done = await _rotate_credentials(conn, vault, batch_size)
    done += await _rotate_channels(conn, vault, batch_size)
    return done


async def _rotate_credentials(conn: asyncpg.Connection, vault: Vault, batch_size: int) -> int:
    current = vault.current_key_id
    done = 0
    after: UUID | None = None
    while True:
        async with conn.transaction():
            rows = await conn.fetch(_STALE_CREDENTIALS, current, after, batch_size)
            if not rows:
                return done
            ids: list[UUID] = []
            ciphertexts: list[bytes] = []
            for row in rows:
                integration_id: UUID = row["integration_id"]
                sealed = vault.reseal(
                    Sealed(row["key_id"], row["ciphertext"]),
                    aad=credentials_aad(integration_id),
                    what=_what(integration_id),
                )
                ids.append(integration_id)
                ciphertexts.append(sealed.ciphertext)
            await conn.execute(_RESEAL_CREDENTIALS, ids, [current] * len(ids), ciphertexts)
        done += len(ids)
        after = ids[-1]
        if len(rows) < batch_size:
            return done


async def _rotate_channels(conn: asyncpg.Connection, vault: Vault, batch_size: int) -> int:
    current = vault.current_key_id
    done = 0
    after: UUID | None = None
    while True:
        async with conn.transaction():
            rows = await conn.fetch(_STALE_CHANNELS, current, after, batch_size)
            if not rows:
                return done
            columns: tuple[list[Any], ...] = ([], [], [], [], [])
            for row in rows:
                channel_id: UUID = row["id"]
                target = _reseal_column(
                    vault,
                    row["target_key_id"],
                    row["target_ciphertext"],
                    aad=channel_target_aad(channel_id),
                    what=f"secrets of notification channel {channel_id} (target)",
                )
                secret = _reseal_column(
                    vault,
                    row["secret_key_id"],
                    row["secret_ciphertext"],
                    aad=channel_secret_aad(channel_id),
                    what=f"secrets of notification channel {channel_id} (secret)",
                )
                done += (target is not None) + (secret is not None)
                values = (
                    channel_id,
                    target.key_id if target else None,
                    target.ciphertext if target else None,
                    secret.key_id if secret else None,
                    secret.ciphertext if secret else None,
                )
                for column, value in zip(columns, values, strict=True):
                    column.append(value)
            await conn.execute(_RESEAL_CHANNELS, *columns)
        after = rows[-1]["id"]
        if len(rows) < batch_size:
            return done


def _reseal_column(
    vault: Vault, key_id: str | None, ciphertext: bytes | None, *, aad: bytes, what: str
) -> Sealed | None:
    """The column re-encrypted under the current key; None when it needs nothing."""
    if key_id is None or ciphertext is None or not vault.needs_rotation(key_id):
        return None
    return vault.reseal(Sealed(key_id, ciphertext), aad=aad, what=what)


_FOR_REAUTHORIZATION = "SELECT key_id, ciphertext FROM ihm_reauthorization_credentials($1)"


async def load_for_reauthorization(
    conn: asyncpg.Connection, vault: Vault, integration_id: UUID
) -> Secret | None:
    """As an org admin (ihm_api, RLS claims): the credentials of one of its integrations,
    through a SECURITY DEFINER function; the API decrypts them with its own vault keys."""
    row = await conn.fetchrow(_FOR_REAUTHORIZATION, integration_id)
    if row is None:
        return None
    return vault.decrypt(
        Sealed(row["key_id"], row["ciphertext"]),
        aad=credentials_aad(integration_id),
        what=f"credentials of integration {integration_id}",
    )

"""Credentials in Postgres: encrypted at rest, write-only for the API, rotatable."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest

from db import credentials
from db.scope import Claims, as_caller, as_service
from db.vault import (
    DecryptionError,
    Sealed,
    UnknownKeyError,
    Vault,
    channel_secret_aad,
    channel_target_aad,
)
from tests.factories import make_integration, make_org

K1 = secrets.token_bytes(32)
K2 = secrets.token_bytes(32)
OLD = Vault([("k1", K1)])
ROLLING = Vault([("k2", K2), ("k1", K1)])
NEW = Vault([("k2", K2)])
BOT = {"botToken": "xoxb-super-secret-token"}
EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)


def admin(org_id: UUID) -> Claims:
    return Claims(sub="admin-1", role="org_admin", org_id=org_id)


async def _store(
    conn: asyncpg.Connection,
    vault: Vault,
    org_id: UUID,
    integration_type: str = "slack",
    payload: dict[str, str] | None = None,
) -> UUID:
    integration = await make_integration(conn, org_id, integration_type)
    await credentials.store(
        conn, vault, org_id=org_id, integration_id=integration.id, payload=payload or BOT
    )
    return integration.id


async def _make_channel(
    conn: asyncpg.Connection, vault: Vault, org_id: UUID, target: str, secret: str | None
) -> UUID:
    """What the channels repository will write: target and secret sealed to the channel."""
    channel_id = uuid4()
    sealed_target = vault.encrypt_text(target, aad=channel_target_aad(channel_id))
    sealed_secret = (
        vault.encrypt_text(secret, aad=channel_secret_aad(channel_id)) if secret else None
    )
    await conn.execute(
        "INSERT INTO notification_channels (id, org_id, kind, target_masked, target_key_id, "
        "target_ciphertext, secret_key_id, secret_ciphertext) "
        "VALUES ($1, $2, 'WEBHOOK', 'https://hooks.example/***', $3, $4, $5, $6)",
        channel_id,
        org_id,
        sealed_target.key_id,
        sealed_target.ciphertext,
        sealed_secret.key_id if sealed_secret else None,
        sealed_secret.ciphertext if sealed_secret else None,
    )
    return channel_id


async def _channel_secrets(
    conn: asyncpg.Connection, vault: Vault, channel_id: UUID
) -> tuple[str, str | None]:
    row = await conn.fetchrow(
        "SELECT target_key_id, target_ciphertext, secret_key_id, secret_ciphertext "
        "FROM notification_channels WHERE id = $1",
        channel_id,
    )
    target = vault.decrypt_text(
        Sealed(row["target_key_id"], row["target_ciphertext"]),
        aad=channel_target_aad(channel_id),
    )
    if row["secret_key_id"] is None:
        return target, None
    secret = vault.decrypt_text(
        Sealed(row["secret_key_id"], row["secret_ciphertext"]),
        aad=channel_secret_aad(channel_id),
    )
    return target, secret


async def _key_ids(conn: asyncpg.Connection) -> set[str | None]:
    rows = await conn.fetch(
        "SELECT key_id FROM integration_credentials "
        "UNION ALL SELECT target_key_id FROM notification_channels "
        "UNION ALL SELECT secret_key_id FROM notification_channels WHERE secret_key_id IS NOT NULL"
    )
    return {r["key_id"] for r in rows}


# -- storing and loading -------------------------------------------------------


async def test_stored_credentials_load_back_by_org_and_integration_type(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await _store(conn, OLD, org, "slack")
        await _store(conn, OLD, org, "xledger", {"apiToken": "xl-token"})

        slack = await credentials.load(conn, OLD, org_id=org, integration_type="slack")
        xledger = await credentials.load(conn, OLD, org_id=org, integration_type="xledger")

    assert slack is not None and slack["botToken"] == BOT["botToken"]
    assert xledger is not None and xledger.reveal() == {"apiToken": "xl-token"}


async def test_load_returns_none_when_nothing_is_stored(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await make_integration(conn, org, "slack")
        other_org = await make_org(conn)
        await _store(conn, OLD, other_org, "slack")

        found = await credentials.load(conn, OLD, org_id=org, integration_type="slack")
        unconfigured = await credentials.load(conn, OLD, org_id=org, integration_type="gmail")

    assert found is None and unconfigured is None


async def test_the_stored_ciphertext_does_not_contain_the_plaintext(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        integration_id = await _store(conn, OLD, org)
        row = await conn.fetchrow(
            "SELECT key_id, ciphertext FROM integration_credentials WHERE integration_id = $1",
            integration_id,
        )

    assert row["key_id"] == "k1"
    assert BOT["botToken"].encode() not in row["ciphertext"]
    assert b"botToken" not in row["ciphertext"]


async def test_storing_again_replaces_the_credentials_and_expiry(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        integration_id = await _store(conn, OLD, org)
        first = await credentials.info(conn, integration_id)

        await credentials.store(
            conn,
            OLD,
            org_id=org,
            integration_id=integration_id,
            payload={"botToken": "xoxb-new"},
            expires_at=EXPIRES,
        )

        loaded = await credentials.load(conn, OLD, org_id=org, integration_type="slack")
        second = await credentials.info(conn, integration_id)
        count = await conn.fetchval("SELECT count(*) FROM integration_credentials")

    assert loaded is not None and loaded.reveal() == {"botToken": "xoxb-new"}
    assert count == 1
    assert first is not None and first.expires_at is None
    assert second is not None and second.expires_at == EXPIRES
    assert second.org_id == org and second.integration_id == integration_id


async def test_exists_and_delete_report_whether_there_were_credentials(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        integration_id = await _store(conn, OLD, org)

        before = await credentials.exists(conn, integration_id)
        deleted = await credentials.delete(conn, integration_id)
        deleted_again = await credentials.delete(conn, integration_id)
        after = await credentials.exists(conn, integration_id)
        info = await credentials.info(conn, integration_id)

    assert (before, deleted, deleted_again, after, info) == (True, True, False, False, None)


# -- integrity ---------------------------------------------------------------


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await _store(conn, OLD, org, "slack")
        xledger_id = await _store(conn, OLD, org, "xledger", {"apiToken": "xl-token"})
        # An attacker with write access swaps slack's ciphertext onto xledger's row.
        await conn.execute(
            "UPDATE integration_credentials SET ciphertext = ("
            "  SELECT cr.ciphertext FROM integration_credentials cr"
            "  JOIN integration_config c ON c.id = cr.integration_id"
            "  WHERE c.integration_type = 'slack' AND c.org_id = $2"
            ") WHERE integration_id = $1",
            xledger_id,
            org,
        )

        with pytest.raises(DecryptionError) as caught:
            await credentials.load(conn, OLD, org_id=org, integration_type="xledger")

    assert str(xledger_id) in str(caught.value)
    assert BOT["botToken"] not in str(caught.value)


async def test_a_tampered_ciphertext_in_the_database_does_not_decrypt(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        integration_id = await _store(conn, OLD, org)
        await conn.execute(
            "UPDATE integration_credentials "
            "SET ciphertext = overlay(ciphertext placing '\\xff'::bytea from 20 for 1) "
            "WHERE integration_id = $1",
            integration_id,
        )

        with pytest.raises(DecryptionError, match="wrong key or tampered data"):
            await credentials.load(conn, OLD, org_id=org, integration_type="slack")


async def test_credentials_under_a_key_no_longer_configured_raise_a_clear_error(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        integration_id = await _store(conn, OLD, org)

        with pytest.raises(UnknownKeyError) as caught:
            await credentials.load(conn, NEW, org_id=org, integration_type="slack")

    message = str(caught.value)
    assert message == (
        f"credentials of integration {integration_id} were encrypted with key 'k1', "
        "which is not in IHM_VAULT_KEYS: add it back to decrypt, or rotate"
    )
    assert BOT["botToken"] not in message
    assert K1.hex() not in message and K2.hex() not in message


# -- rotation ----------------------------------------------------------------


async def test_rotate_moves_credentials_and_channel_secrets_to_the_first_key(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await _store(conn, OLD, org, "slack")
        await _store(conn, OLD, org, "xledger", {"apiToken": "xl-token"})
        with_secret = await _make_channel(
            conn, OLD, org, "https://hooks.example/abc", "hmac-secret"
        )
        target_only = await _make_channel(conn, OLD, org, "apprise://tok@host", None)

    async with as_service(pool) as conn:
        # Given the new key first and the old one still there: old ciphertexts still open.
        slack = await credentials.load(conn, ROLLING, org_id=org, integration_type="slack")
        assert slack is not None and slack.reveal() == BOT

        rotated = await credentials.rotate(conn, ROLLING)

    assert rotated == 2 + 2 + 1  # two credentials, two targets, one channel secret
    async with as_service(pool) as conn:
        assert await _key_ids(conn) == {"k2"}
        # The old key can go: the new one alone opens everything.
        slack = await credentials.load(conn, NEW, org_id=org, integration_type="slack")
        xledger = await credentials.load(conn, NEW, org_id=org, integration_type="xledger")
        assert slack is not None and slack.reveal() == BOT
        assert xledger is not None and xledger.reveal() == {"apiToken": "xl-token"}
        assert await _channel_secrets(conn, NEW, with_secret) == (
            "https://hooks.example/abc",
            "hmac-secret",
        )
        assert await _channel_secrets(conn, NEW, target_only) == ("apprise://tok@host", None)


async def test_rotating_twice_reencrypts_nothing_the_second_time(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await _store(conn, OLD, org)
        await _make_channel(conn, OLD, org, "https://hooks.example/abc", "hmac-secret")

        first = await credentials.rotate(conn, ROLLING)
        second = await credentials.rotate(conn, ROLLING)

    assert (first, second) == (3, 0)


async def test_rotate_leaves_rows_already_under_the_current_key_untouched(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        current_id = await _store(conn, NEW, org, "slack")
        await _store(conn, OLD, org, "xledger", {"apiToken": "xl-token"})
        before = await conn.fetchval(
            "SELECT ciphertext FROM integration_credentials WHERE integration_id = $1", current_id
        )

        rotated = await credentials.rotate(conn, ROLLING)

        after = await conn.fetchval(
            "SELECT ciphertext FROM integration_credentials WHERE integration_id = $1", current_id
        )

    assert rotated == 1
    assert before == after


async def test_rotate_goes_through_more_rows_than_one_batch(pool: asyncpg.Pool) -> None:
    types = ["http", "slack", "gmail", "google_calendar", "xledger", "dynamics365"]
    async with as_service(pool) as conn:
        org = await make_org(conn)
        for integration_type in types:
            await _store(conn, OLD, org, integration_type, {"token": integration_type})
        for n in range(5):
            await _make_channel(conn, OLD, org, f"https://hooks.example/{n}", f"s{n}")

        rotated = await credentials.rotate(conn, ROLLING, batch_size=2)

        assert await _key_ids(conn) == {"k2"}
        for integration_type in types:
            loaded = await credentials.load(
                conn, NEW, org_id=org, integration_type=integration_type
            )
            assert loaded is not None and loaded["token"] == integration_type

    assert rotated == len(types) + 5 * 2


async def test_rotate_stops_on_a_ciphertext_whose_key_is_gone(pool: asyncpg.Pool) -> None:
    lost = Vault([("k0", secrets.token_bytes(32))])
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await _store(conn, lost, org)

        with pytest.raises(UnknownKeyError, match="key 'k0'"):
            await credentials.rotate(conn, ROLLING)


# -- as the API role ----------------------------------------------------------


async def test_the_api_role_stores_replaces_and_deletes_its_orgs_credentials(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        integration = await make_integration(conn, org, "slack")

    async with as_caller(pool, admin(org)) as conn:
        await credentials.store(
            conn, OLD, org_id=org, integration_id=integration.id, payload={"botToken": "first"}
        )
        # The second store takes the ON CONFLICT path.
        await credentials.store(
            conn,
            OLD,
            org_id=org,
            integration_id=integration.id,
            payload=BOT,
            expires_at=EXPIRES,
        )
        assert await credentials.exists(conn, integration.id)
        info = await credentials.info(conn, integration.id)
        assert info is not None and info.expires_at == EXPIRES

    async with as_service(pool) as conn:
        loaded = await credentials.load(conn, OLD, org_id=org, integration_type="slack")
        assert loaded is not None and loaded.reveal() == BOT

    async with as_caller(pool, admin(org)) as conn:
        assert await credentials.delete(conn, integration.id)
        assert not await credentials.exists(conn, integration.id)


async def test_the_api_role_may_not_read_the_ciphertext(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        await _store(conn, OLD, org)

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, admin(org)) as conn:
            await conn.fetch("SELECT ciphertext FROM integration_credentials")

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, admin(org)) as conn:
            await credentials.load(conn, OLD, org_id=org, integration_type="slack")


async def test_the_api_role_cannot_store_credentials_on_another_orgs_integration(
    pool: asyncpg.Pool,
) -> None:
    async with as_service(pool) as conn:
        org_a = await make_org(conn, "A")
        org_b = await make_org(conn, "B")
        integration_b = await make_integration(conn, org_b, "slack")

    # Claiming the other org is refused by row-level security ...
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, admin(org_a)) as conn:
            await credentials.store(
                conn, OLD, org_id=org_b, integration_id=integration_b.id, payload=BOT
            )
    # ... and its own org with the other org's integration by the foreign key.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with as_caller(pool, admin(org_a)) as conn:
            await credentials.store(
                conn, OLD, org_id=org_a, integration_id=integration_b.id, payload=BOT
            )

    async with as_service(pool) as conn:
        assert not await credentials.exists(conn, integration_b.id)


async def test_the_api_role_does_not_see_another_orgs_credentials(pool: asyncpg.Pool) -> None:
    async with as_service(pool) as conn:
        org_a = await make_org(conn, "A")
        org_b = await make_org(conn, "B")
        integration_b = await _store(conn, OLD, org_b)

    async with as_caller(pool, admin(org_a)) as conn:
        seen = await credentials.exists(conn, integration_b)
        deleted = await credentials.delete(conn, integration_b)

    async with as_service(pool) as conn:
        still_there = await credentials.exists(conn, integration_b)

    assert (seen, deleted, still_there) == (False, False, True)

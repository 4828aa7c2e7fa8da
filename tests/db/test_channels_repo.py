"""Notification channels: targets masked for reading, target and secret sealed in the vault."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from db import channels
from db.channels import mask_target, validate_target
from db.scope import Claims, as_caller, as_service
from db.vault import Vault
from tests.factories import make_alert, make_org

VAULT = Vault([("k1", secrets.token_bytes(32))])
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SIGNING_SECRET = "whsec_signing"
SLACK_HOOK = "https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/Xq9zLm3TkR8vWp2Yc7Nd5Hs1"


def admin(org_id: UUID | None, role: str = "org_admin") -> Claims:
    return Claims(sub="admin-1", role=role, org_id=org_id)


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        return await make_org(conn)


# -- masking ---------------------------------------------------------------------

# (kind, target, masked, parts that must not survive)
MASKING = [
    ("EMAIL", "alice@example.com", "a***@example.com", ["alice"]),
    ("EMAIL", "Bob.Smith+alerts@Example.org", "B***@Example.org", ["ob.Smith", "alerts"]),
    ("EMAIL", "mailto:ops@example.com", "o***@example.com", ["ops@"]),
    (
        "EMAIL",
        "alice@example.com, bob@example.org",
        "a***@example.com, b***@example.org",
        ["alice", "bob"],
    ),
    ("EMAIL", "not-an-address", "***", ["not-an-address"]),
    (
        "WEBHOOK",
        "https://hooks.example.com/notify?token=s3cr3t-T0ken&channel=ops",
        "https://hooks.example.com/notify?token=***&channel=***",
        ["s3cr3t", "T0ken", "ops"],
    ),
    (
        "WEBHOOK",
        "https://user:hunter2@example.com/hook",
        "https://***@example.com/hook",
        ["hunter2", "user"],
    ),
    (
        "WEBHOOK",
        "https://example.com:8443/hooks/incoming?apikey=abc123#sig=xyz789",
        "https://example.com:8443/hooks/incoming?apikey=***#***",
        ["abc123", "xyz789"],
    ),
    (
        "WEBHOOK",
        SLACK_HOOK,
        "https://hooks.slack.com/services/***/***/***",
        ["T0ABCDEF1", "B0ABCDEF2", "Xq9zLm3TkR8vWp2Yc7Nd5Hs1"],
    ),
    (
        "WEBHOOK",
        "https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0Zq",
        "https://discord.com/api/webhooks/123456789012345678/***",
        ["AbCdEf", "Yz0Zq"],
    ),
    ("WEBHOOK", "https://example.com", "https://example.com", []),
    ("WEBHOOK", "not a url", "***", ["not a url"]),
    ("APPRISE", "tgram://123456:ABCDEF/987", "tgram://***/***", ["123456", "ABCDEF", "987"]),
    ("APPRISE", "mailto://user:pass@gmail.com", "mailto://***@gmail.com", ["user", "pass"]),
    (
        "APPRISE",
        "discord://webhook_id/webhook_token",
        "discord://***/***",
        ["webhook_id", "webhook_token"],
    ),
    ("APPRISE", "ntfy://topic", "ntfy://***", ["topic"]),
    (
        "APPRISE",
        "slack://TokenA/TokenB/TokenC/#channel",
        "slack://***/***/***/#channel",
        ["TokenA", "TokenB", "TokenC"],
    ),
    (
        "APPRISE",
        "ntfys://ntfy.example.com/alerts-topic?priority=high&auth=tk_abc",
        "ntfys://ntfy.example.com/***?priority=***&auth=***",
        ["alerts-topic", "tk_abc", "high"],
    ),
    (
        "APPRISE",
        "json://bot:pw123@hooks.example.com:8080/path/to?token=abc",
        "json://***@hooks.example.com:8080/***/***?token=***",
        ["bot", "pw123", "path", "abc"],
    ),
    ("APPRISE", "pover://user@token", "pover://***@***", ["user", "token"]),
    ("APPRISE", "just some text", "***", ["just some text"]),
    ("IN_APP", "coordinators", "coordinators", []),
]


@pytest.mark.parametrize(("kind", "target", "masked", "secret_parts"), MASKING)
def test_masking_a_target_keeps_what_identifies_it_and_hides_every_secret(
    kind: str, target: str, masked: str, secret_parts: list[str]
) -> None:
    result = mask_target(kind, target)

    assert result == masked
    for part in secret_parts:
        assert part not in result


def test_masking_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown channel kind"):
        mask_target("CARRIER_PIGEON", "coo")


@pytest.mark.parametrize(
    ("kind", "target", "problem"),
    [
        ("EMAIL", "alice@example.com", None),
        ("EMAIL", "alice@example.com; bob@example.org", None),
        ("EMAIL", "alice", "email addresses"),
        ("EMAIL", "alice@example.com, nope", "email addresses"),
        ("EMAIL", "", "required"),
        ("WEBHOOK", "https://hooks.example.com/x?token=abc", None),
        ("WEBHOOK", "http://127.0.0.1:9000/hook", None),
        ("WEBHOOK", "ftp://example.com/hook", "http"),
        ("WEBHOOK", "https:///no-host", "http"),
        ("APPRISE", "tgram://123456:ABCDEF/987", None),
        ("APPRISE", "telegram bot 123", "Apprise URL"),
        ("IN_APP", "", None),
        ("SMOKE", "signal", "Unknown channel kind"),
        ("WEBHOOK", "https://example.com/" + "a" * 3000, "longer than"),
    ],
)
def test_a_target_is_validated_for_its_kind(kind: str, target: str, problem: str | None) -> None:
    found = validate_target(kind, target)

    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
        assert "token=abc" not in found


# -- storing and reading -----------------------------------------------------------


async def _add(
    pool: asyncpg.Pool,
    org: UUID,
    *,
    kind: str = "WEBHOOK",
    target: str = SLACK_HOOK,
    secret: str | None = SIGNING_SECRET,
) -> channels.Channel:
    async with as_caller(pool, admin(org)) as conn:
        return await channels.add(
            conn,
            VAULT,
            org_id=org,
            kind=kind,
            target=target,
            secret=secret,
            min_severity="CRITICAL",
        )


async def test_an_org_admin_adds_a_channel_whose_target_reads_back_masked(
    pool: asyncpg.Pool, org: UUID
) -> None:
    channel = await _add(pool, org)

    assert channel.org_id == org
    assert channel.kind == "WEBHOOK"
    assert channel.target_masked == "https://hooks.slack.com/services/***/***/***"
    assert channel.min_severity == "CRITICAL"
    assert channel.enabled
    assert (channel.consecutive_failures, channel.failing_since) == (0, None)
    async with as_caller(pool, admin(org, "member")) as conn:
        assert await channels.list_for_org(conn, org) == [channel]
        assert await channels.get(conn, channel.id) == channel


async def test_target_and_secret_are_stored_encrypted_and_only_the_worker_decrypts_them(
    pool: asyncpg.Pool, org: UUID
) -> None:
    channel = await _add(pool, org)

    async with as_service(pool) as conn:
        stored = await conn.fetchrow(
            "SELECT target_key_id, target_ciphertext, secret_key_id, secret_ciphertext "
            "FROM notification_channels WHERE id = $1",
            channel.id,
        )
        target, secret = await channels.load_secret_target(conn, VAULT, channel.id)

    assert (target, secret) == (SLACK_HOOK, "whsec_signing")
    assert stored["target_key_id"] == stored["secret_key_id"] == "k1"
    assert b"Xq9zLm3TkR8vWp2Yc7Nd5Hs1" not in bytes(stored["target_ciphertext"])
    assert b"whsec_signing" not in bytes(stored["secret_ciphertext"])


async def test_a_channel_without_a_secret_loads_none_for_it(pool: asyncpg.Pool, org: UUID) -> None:
    channel = await _add(pool, org, kind="EMAIL", target="alice@example.com", secret=None)

    async with as_service(pool) as conn:
        loaded = await channels.load_secret_target(conn, VAULT, channel.id)

    assert channel.target_masked == "a***@example.com"
    assert loaded == ("alice@example.com", None)


async def test_loading_an_unknown_channel_is_a_lookup_error(pool: asyncpg.Pool) -> None:
    with pytest.raises(LookupError):
        async with as_service(pool) as conn:
            await channels.load_secret_target(conn, VAULT, uuid4())


@pytest.mark.parametrize(
    "column", ["target_ciphertext", "target_key_id", "secret_ciphertext", "secret_key_id", "*"]
)
async def test_the_api_role_can_never_select_a_channels_secrets(
    pool: asyncpg.Pool, org: UUID, column: str
) -> None:
    await _add(pool, org)

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, admin(org)) as conn:
            await conn.fetch(f"SELECT {column} FROM notification_channels")


async def test_the_api_role_cannot_decrypt_a_channel(pool: asyncpg.Pool, org: UUID) -> None:
    channel = await _add(pool, org)

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, admin(org)) as conn:
            await channels.load_secret_target(conn, VAULT, channel.id)


async def test_adding_a_channel_of_an_unknown_kind_is_refused(
    pool: asyncpg.Pool, org: UUID
) -> None:
    with pytest.raises(ValueError, match="unknown channel kind"):
        await _add(pool, org, kind="FAX")


async def test_removing_a_channel_takes_its_pending_deliveries_with_it(
    pool: asyncpg.Pool, org: UUID
) -> None:
    channel = await _add(pool, org)
    async with as_service(pool) as conn:
        alert = await make_alert(conn, org)
        await conn.execute(
            "INSERT INTO notification_outbox (org_id, channel_id, alert_id, idempotency_key, "
            "payload) VALUES ($1, $2, $3, 'k', '{}')",
            org,
            channel.id,
            alert.id,
        )

    async with as_caller(pool, admin(org)) as conn:
        removed = await channels.remove(conn, channel.id)
        again = await channels.remove(conn, channel.id)
        gone = await channels.get(conn, channel.id)

    assert (removed, again, gone) == (True, False, None)
    async with as_service(pool) as conn:
        assert await conn.fetchval("SELECT count(*) FROM notification_outbox") == 0


async def test_org_b_sees_and_removes_nothing_of_org_a_channels(
    pool: asyncpg.Pool, org: UUID
) -> None:
    channel = await _add(pool, org)
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")

    async with as_caller(pool, admin(org_b)) as conn:
        listed = await channels.list_for_org(conn, org)
        got = await channels.get(conn, channel.id)
        removed = await channels.remove(conn, channel.id)

    assert (listed, got, removed) == ([], None, False)
    async with as_service(pool) as conn:
        assert await channels.get(conn, channel.id) == channel


async def test_delivery_failures_build_a_streak_that_a_success_ends(
    pool: asyncpg.Pool, org: UUID
) -> None:
    channel = await _add(pool, org)

    async with as_service(pool) as conn:
        once = await channels.record_delivery(conn, channel.id, ok=False, at=NOW)
        twice = await channels.record_delivery(
            conn, channel.id, ok=False, at=NOW + timedelta(minutes=1)
        )
        healed = await channels.record_delivery(
            conn, channel.id, ok=True, at=NOW + timedelta(minutes=2)
        )

    assert once is not None and twice is not None and healed is not None
    assert (once.consecutive_failures, once.failing_since) == (1, NOW)
    assert (twice.consecutive_failures, twice.failing_since) == (2, NOW)
    assert (healed.consecutive_failures, healed.failing_since) == (0, None)


async def test_a_global_admin_learns_which_org_a_channel_belongs_to(
    pool: asyncpg.Pool, org: UUID
) -> None:
    channel = await _add(pool, org)

    async with as_caller(pool, admin(None, "global_admin")) as conn:
        assert await channels.org_of(conn, channel.id) == org
        assert await channels.org_of(conn, uuid4()) is None

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="global_admin"):
        async with as_caller(pool, admin(org)) as conn:
            await channels.org_of(conn, channel.id)

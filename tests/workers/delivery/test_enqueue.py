"""db.outbox.enqueue: the in-app floor plus one outbox row per eligible channel, idempotent."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from db import outbox
from db.scope import as_service
from db.vault import Vault
from tests.factories import make_org
from tests.workers.delivery.conftest import make_channel


async def _enqueue(
    pool: asyncpg.Pool, org: UUID, severity: str = "WARNING", key: str = "k1"
) -> int:
    async with as_service(pool) as conn:
        return await outbox.enqueue(
            conn,
            org_id=org,
            alert_id=None,
            severity=severity,
            title="Slack is unreachable",
            body="The connection was refused. See https://status.example.com/x?token=abc",
            idempotency_key=key,
            group_key="g1",
        )


async def _notifications(pool: asyncpg.Pool, org: UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM notifications WHERE org_id = $1", org
    )
    return rows


async def test_enqueue_writes_the_in_app_notification_and_one_outbox_row_per_eligible_channel(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    # given: channels of every kind, one disabled, one above the severity, one in another org
    email = await make_channel(pool, vault, org, "EMAIL", "ops@example.com", min_severity="INFO")
    hook = await make_channel(
        pool, vault, org, "WEBHOOK", "https://hooks.example.com/T0KEN", secret="whsec-SECRET"
    )
    push = await make_channel(pool, vault, org, "APPRISE", "ntfy://ntfy.sh/alerts")
    await make_channel(pool, vault, org, "IN_APP")
    await make_channel(pool, vault, org, "WEBHOOK", "https://a.example.com/x", enabled=False)
    await make_channel(pool, vault, org, "EMAIL", "boss@example.com", min_severity="CRITICAL")
    async with as_service(pool) as conn:
        other_org = await make_org(conn)
    await make_channel(pool, vault, other_org, "EMAIL", "other@example.com")

    # when
    created = await _enqueue(pool, org, "WARNING", key="alert-1:opened")

    # then
    assert created == 3
    (note,) = await _notifications(pool, org)
    assert note["title"] == "Slack is unreachable"
    assert note["idempotency_key"] == "alert-1:opened"
    async with as_service(pool) as conn:
        rows = await outbox.list_for_org(conn, org)
        assert await outbox.list_for_org(conn, other_org) == []
    assert {r.channel_id for r in rows} == {email.id, hook.id, push.id}
    for row in rows:
        assert row.state == "PENDING" and row.attempts == 0
        assert row.idempotency_key == f"alert-1:opened:{row.channel_id}"
        assert row.payload["idempotencyKey"] == row.idempotency_key
        assert row.payload["orgId"] == str(org)
        assert row.payload["severity"] == "WARNING"
        assert row.payload["title"] == "Slack is unreachable"
        assert row.payload["groupKey"] == "g1"
        assert row.payload["createdAt"]
        assert "[link removed]" in row.payload["text"]
        assert "token=abc" not in row.payload["text"]
        assert "whsec-SECRET" not in str(row.payload) and "T0KEN" not in str(row.payload)


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("INFO", 1), ("WARNING", 2), ("CRITICAL", 3)],
)
async def test_enqueue_honours_each_channels_min_severity(
    pool: asyncpg.Pool, vault: Vault, org: UUID, severity: str, expected: int
) -> None:
    # given
    for minimum in ("INFO", "WARNING", "CRITICAL"):
        await make_channel(pool, vault, org, "EMAIL", "ops@example.com", min_severity=minimum)

    # when
    created = await _enqueue(pool, org, severity)

    # then
    assert created == expected
    assert len(await _notifications(pool, org)) == 1


async def test_enqueueing_the_same_message_again_adds_nothing(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    # given
    await make_channel(pool, vault, org, "EMAIL", "ops@example.com")
    await make_channel(pool, vault, org, "WEBHOOK", "https://hooks.example.com/x")
    assert await _enqueue(pool, org, key="same") == 2

    # when
    again = await _enqueue(pool, org, key="same")

    # then
    assert again == 0
    assert len(await _notifications(pool, org)) == 1
    assert await pool.fetchval("SELECT count(*) FROM notification_outbox") == 2


async def test_enqueue_commits_nothing_when_the_alert_transaction_rolls_back(
    pool: asyncpg.Pool, vault: Vault, org: UUID
) -> None:
    # given
    await make_channel(pool, vault, org, "EMAIL", "ops@example.com")

    # when: the transaction that raised the alert fails after enqueueing
    with pytest.raises(RuntimeError):
        async with as_service(pool) as conn:
            await outbox.enqueue(
                conn,
                org_id=org,
                alert_id=None,
                severity="CRITICAL",
                title="t",
                body="b",
                idempotency_key="rolled-back",
            )
            raise RuntimeError("the alert transaction failed")

    # then
    assert await _notifications(pool, org) == []
    assert await pool.fetchval("SELECT count(*) FROM notification_outbox") == 0


async def test_enqueue_refuses_an_unknown_severity(pool: asyncpg.Pool, org: UUID) -> None:
    with pytest.raises(ValueError, match="severity"):
        await _enqueue(pool, org, "DISASTER")


def test_plain_text_has_the_severity_and_title_and_no_links() -> None:
    text = outbox.plain_text("CRITICAL", "Xledger rejected the API key", "See http://x.test/a?t=1.")

    assert text == "[CRITICAL] Xledger rejected the API key\n\nSee [link removed]"

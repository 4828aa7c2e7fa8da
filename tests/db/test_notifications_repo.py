"""In-app notifications: one per org, read state per user."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import asyncpg
import pytest

from db import notifications
from db.scope import Claims, as_caller, as_service
from tests.factories import make_alert, make_org


def user(org_id: UUID, sub: str = "user-1", role: str = "coordinator") -> Claims:
    return Claims(sub=sub, role=role, org_id=org_id)


@pytest.fixture
async def org(pool: asyncpg.Pool) -> UUID:
    async with as_service(pool) as conn:
        return await make_org(conn)


async def _create(pool: asyncpg.Pool, org_id: UUID, n: int) -> list[notifications.Notification]:
    """n notifications, each in its own transaction (distinct created_at); newest first."""
    made = []
    for i in range(n):
        async with as_service(pool) as conn:
            made.append(
                await notifications.create(
                    conn, org_id=org_id, alert_id=None, title=f"n{i}", body=f"body {i}"
                )
            )
    return made[::-1]


async def test_the_worker_creates_an_unread_notification_for_an_alert(
    pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_service(pool) as conn:
        alert = await make_alert(conn, org)
        note = await notifications.create(
            conn, org_id=org, alert_id=alert.id, title="Slack is down", body="Check the token."
        )

    assert note.org_id == org
    assert note.alert_id == alert.id
    assert (note.title, note.body) == ("Slack is down", "Check the token.")
    assert note.read_at is None


async def test_the_api_role_cannot_create_notifications(pool: asyncpg.Pool, org: UUID) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_caller(pool, user(org)) as conn:
            await notifications.create(conn, org_id=org, alert_id=None, title="t", body="b")


async def test_notifications_page_newest_first(pool: asyncpg.Pool, org: UUID) -> None:
    newest_first = await _create(pool, org, 5)

    seen: list[notifications.Notification] = []
    has_next: list[bool] = []
    after = None
    async with as_caller(pool, user(org, role="member")) as conn:
        while True:
            page = await notifications.list_for_user(
                conn, org, "user-1", unread_only=False, first=2, after=after
            )
            seen += page.items
            has_next.append(page.has_next)
            if not page.has_next:
                break
            after = page.end_cursor

    assert [n.id for n in seen] == [n.id for n in newest_first]
    assert has_next == [True, True, False]


async def test_marking_read_is_per_user(pool: asyncpg.Pool, org: UUID) -> None:
    newest, middle, oldest = await _create(pool, org, 3)

    async with as_caller(pool, user(org, "alice")) as conn:
        read = await notifications.mark_read(conn, middle.id, org, "alice")
        alices = await notifications.list_for_user(
            conn, org, "alice", unread_only=False, first=10, after=None
        )
        alice_unread = await notifications.unread_count(conn, org, "alice")
    async with as_caller(pool, user(org, "bob")) as conn:
        bobs = await notifications.list_for_user(
            conn, org, "bob", unread_only=False, first=10, after=None
        )
        bob_unread = await notifications.unread_count(conn, org, "bob")

    assert read is not None and read.read_at is not None
    assert [(n.id, n.read_at) for n in alices.items] == [
        (newest.id, None),
        (middle.id, read.read_at),
        (oldest.id, None),
    ]
    assert all(n.read_at is None for n in bobs.items)
    assert (alice_unread, bob_unread) == (2, 3)


async def test_marking_read_twice_keeps_the_first_read_time(pool: asyncpg.Pool, org: UUID) -> None:
    (note,) = await _create(pool, org, 1)

    async with as_caller(pool, user(org)) as conn:
        first = await notifications.mark_read(conn, note.id, org, "user-1")
    async with as_caller(pool, user(org)) as conn:
        second = await notifications.mark_read(conn, note.id, org, "user-1")
        unread = await notifications.unread_count(conn, org, "user-1")

    assert first is not None and second is not None
    assert second.read_at == first.read_at
    assert second.id == note.id and second.title == note.title
    assert unread == 0


async def test_concurrent_marks_of_one_notification_agree_on_the_read_time(
    pool: asyncpg.Pool, org: UUID
) -> None:
    (note,) = await _create(pool, org, 1)

    async def mark() -> notifications.Notification | None:
        async with as_caller(pool, user(org)) as conn:
            return await notifications.mark_read(conn, note.id, org, "user-1")

    results = await asyncio.gather(*(mark() for _ in range(4)))

    assert all(r is not None for r in results)
    assert len({r.read_at for r in results if r is not None}) == 1


async def test_unread_only_lists_pages_of_what_this_user_has_not_read(
    pool: asyncpg.Pool, org: UUID
) -> None:
    made = await _create(pool, org, 5)
    async with as_caller(pool, user(org)) as conn:
        for note in made[1::2]:
            await notifications.mark_read(conn, note.id, org, "user-1")
        first_page = await notifications.list_for_user(
            conn, org, "user-1", unread_only=True, first=2, after=None
        )
        second_page = await notifications.list_for_user(
            conn, org, "user-1", unread_only=True, first=2, after=first_page.end_cursor
        )

    assert [n.id for n in first_page.items + second_page.items] == [n.id for n in made[::2]]
    assert first_page.has_next and not second_page.has_next
    assert all(n.read_at is None for n in first_page.items + second_page.items)


async def test_marking_an_unknown_notification_read_returns_none(
    pool: asyncpg.Pool, org: UUID
) -> None:
    async with as_caller(pool, user(org)) as conn:
        assert await notifications.mark_read(conn, uuid4(), org, "user-1") is None


async def test_org_b_sees_nothing_of_org_a_notifications(pool: asyncpg.Pool, org: UUID) -> None:
    (note,) = await _create(pool, org, 1)
    async with as_service(pool) as conn:
        org_b = await make_org(conn, "B")

    async with as_caller(pool, user(org_b)) as conn:
        listed = await notifications.list_for_user(
            conn, org, "user-1", unread_only=False, first=10, after=None
        )
        count = await notifications.unread_count(conn, org, "user-1")
        as_own_org = await notifications.mark_read(conn, note.id, org_b, "user-1")
        as_other_org = await notifications.mark_read(conn, note.id, org, "user-1")

    assert listed.items == []
    assert count == 0
    assert as_own_org is None
    assert as_other_org is None
    async with as_service(pool) as conn:
        assert await conn.fetchval("SELECT count(*) FROM notification_reads") == 0


async def test_notifications_list_refuses_a_bad_cursor(pool: asyncpg.Pool, org: UUID) -> None:
    with pytest.raises(ValueError, match="invalid cursor"):
        async with as_caller(pool, user(org)) as conn:
            await notifications.list_for_user(
                conn, org, "user-1", unread_only=False, first=10, after="%%%"
            )

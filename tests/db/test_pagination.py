"""Opaque keyset cursors and pages built from `LIMIT first + 1` rows."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from db.pagination import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor, keyset, page_of

AT = datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)
ID = UUID("6f1c2a4e-8a4b-4c1e-9f55-0a1b2c3d4e5f")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_decodes_to_the_timestamp_and_id_it_was_made_from() -> None:
    assert decode_cursor(encode_cursor(AT, ID)) == (AT, ID)


def test_a_cursor_keeps_microseconds_and_the_utc_offset() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))

    decoded, _ = decode_cursor(encode_cursor(at, ID))

    assert decoded == at
    assert decoded.microsecond == 6


def test_a_cursor_is_urlsafe_base64_json_without_padding() -> None:
    cursor = encode_cursor(AT, ID)

    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    padded = cursor + "=" * (-len(cursor) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {"t": AT.isoformat(), "i": str(ID)}


def test_a_cursor_needs_a_timezone_aware_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_cursor(datetime(2026, 1, 1), ID)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!not base64!!!",
        "bm90IGpzb24",  # "not json"
        _b64("[1, 2]"),
        _b64('{"t": "2026-11-01T12:00:00+00:00"}'),
        _b64('{"t": "yesterday", "i": "6f1c2a4e-8a4b-4c1e-9f55-0a1b2c3d4e5f"}'),
        _b64('{"t": "2026-11-01T12:00:00+00:00", "i": "not-a-uuid"}'),
        _b64('{"t": "2026-11-01T12:00:00", "i": "6f1c2a4e-8a4b-4c1e-9f55-0a1b2c3d4e5f"}'),
        _b64('{"t": 5, "i": 7}'),
        "ünïcödé",
        "A" * 1000,
    ],
)
def test_anything_but_a_cursor_we_made_is_an_invalid_cursor(cursor: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid cursor$"):
        decode_cursor(cursor)


@pytest.mark.parametrize("first", [-1, MAX_PAGE_SIZE + 1])
def test_a_page_size_out_of_range_is_refused(first: int) -> None:
    with pytest.raises(ValueError, match="first must be between"):
        keyset(first, None)


def test_the_keyset_fetches_one_row_more_than_the_page_shows() -> None:
    assert keyset(10, None).limit == 11
    after = keyset(10, encode_cursor(AT, ID))
    assert (after.at, after.id) == (AT, ID)


def test_a_keyset_with_a_bad_cursor_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid cursor"):
        keyset(10, "garbage")


def _rows(n: int) -> list[tuple[datetime, UUID]]:
    return [(AT - timedelta(minutes=i), uuid4()) for i in range(n)]


def test_a_page_with_the_extra_row_has_a_next_page_ending_at_its_last_item() -> None:
    rows = _rows(3)

    page = page_of(rows, 2, lambda r: r)

    assert page == Page(items=rows[:2], has_next=True, end_cursor=encode_cursor(*rows[1]))


def test_a_page_without_the_extra_row_is_the_last_one() -> None:
    rows = _rows(2)

    page = page_of(rows, 2, lambda r: r)

    assert page.items == rows
    assert not page.has_next
    assert page.end_cursor == encode_cursor(*rows[1])


def test_an_empty_page_has_no_end_cursor() -> None:
    assert page_of([], 5, lambda r: r) == Page(items=[], has_next=False, end_cursor=None)


def test_a_page_of_zero_items_still_says_whether_there_are_more() -> None:
    page = page_of(_rows(1), 0, lambda r: r)

    assert page == Page(items=[], has_next=True, end_cursor=None)

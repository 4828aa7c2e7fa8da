"""Keyset pagination: opaque cursors and pages of rows fetched with `LIMIT first + 1`.

A cursor is the sort key of the last row a client saw, `(timestamp, id)`, as
urlsafe base64 of a small JSON object. Lists sort newest first on that pair,
so the next page is `WHERE (at, id) < (cursor.at, cursor.id)`: stable while
rows are added, and an index range scan however deep the client pages.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

T = TypeVar("T")

MAX_PAGE_SIZE = 500
# A cursor we made is about 90 characters; anything far longer is not one of ours.
_MAX_CURSOR_LENGTH = 256


def encode_cursor(at: datetime, id: UUID) -> str:
    if at.tzinfo is None:
        raise ValueError("cursor timestamps must be timezone-aware")
    payload = json.dumps({"t": at.isoformat(), "i": str(id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The `(timestamp, id)` a cursor holds; `ValueError("invalid cursor")` for anything else."""
    try:
        if len(cursor) > _MAX_CURSOR_LENGTH:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        at = datetime.fromisoformat(data["t"])
        id = UUID(data["i"])
        if at.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError("invalid cursor") from None
    return at, id


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    end_cursor: str | None


@dataclass(frozen=True)
class Keyset:
    """Query parameters of one page: `limit` is `first + 1`, `at`/`id` are None on page one."""

    limit: int
    at: datetime | None
    id: UUID | None


def keyset(first: int, after: str | None) -> Keyset:
    """Validate `first`/`after` (ValueError: the API answers BAD_USER_INPUT)."""
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise ValueError(f"first must be between 0 and {MAX_PAGE_SIZE}")
    if after is None:
        return Keyset(first + 1, None, None)
    at, id = decode_cursor(after)
    return Keyset(first + 1, at, id)


def page_of(items: Sequence[T], first: int, key: Callable[[T], tuple[datetime, UUID]]) -> Page[T]:
    """A page from rows fetched with `LIMIT first + 1`: the extra row only says there is more."""
    shown = list(items[:first])
    return Page(
        items=shown,
        has_next=len(items) > first,
        end_cursor=encode_cursor(*key(shown[-1])) if shown else None,
    )

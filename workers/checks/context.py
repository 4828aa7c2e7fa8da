"""What adapters get from the worker: the shared HTTP client, credentials, token cache.

Adapters never see the database: credentials reach them through the
`CredentialSource` the runner wires in (the vault, in production).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import httpx


class CredentialsUnavailable(Exception):
    """Stored credentials exist but cannot be read (e.g. encrypted with a retired key)."""


class Credentials(Protocol):
    """Decrypted credentials; their repr never shows a value."""

    def get(self, name: str) -> Any: ...


class CredentialSource(Protocol):
    async def load(self, org_id: UUID, integration_type: str) -> Credentials | None:
        """None when none are stored; raises CredentialsUnavailable when unreadable."""
        ...

    async def save(self, org_id: UUID, integration_type: str, payload: dict[str, str]) -> None:
        """Replace the stored credentials (after a token refresh)."""
        ...


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class TokenCache:
    """Access tokens kept in memory until shortly before they expire (one per worker).

    Keys are digests, so client secrets are never kept as dictionary keys.
    """

    margin_seconds: float = 60.0
    _tokens: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    @staticmethod
    def key(*parts: str) -> str:
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

    def get(self, key: str, now: datetime) -> str | None:
        cached = self._tokens.get(key)
        if cached is None:
            return None
        token, expires_at = cached
        if (expires_at - now).total_seconds() <= self.margin_seconds:
            del self._tokens[key]
            return None
        return token

    def put(self, key: str, token: str, expires_at: datetime) -> None:
        self._tokens[key] = (token, expires_at)

    def drop(self, key: str) -> None:
        self._tokens.pop(key, None)


@dataclass(frozen=True)
class CheckContext:
    http: httpx.AsyncClient
    credentials: CredentialSource
    tokens: TokenCache = field(default_factory=TokenCache)
    clock: Callable[[], datetime] = utcnow

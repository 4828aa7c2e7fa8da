"""Encryption of credentials and channel secrets: AES-256-GCM, keys named for rotation.

No I/O and nothing from the rest of the project: the caller hands in the keys
(`settings.vault_keys` as `(key_id, key)` pairs). The first key encrypts, every
key decrypts, so a new key is rolled out by putting it first, running
`db.credentials.rotate`, then dropping the old one.

A ciphertext is `nonce (12 random bytes) || AES-GCM output (with its 16-byte
tag)`. Each one is bound with associated data to the row and column it lives
in (the `*_aad` helpers below), so a ciphertext copied onto another row, or
from one column to another, fails to decrypt instead of handing one
integration's secrets to another.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
TAG_BYTES = 16


# -- where a ciphertext lives ------------------------------------------------
# Every repository storing vault ciphertexts uses these, so that the writer and
# the readers (and `rotate`) agree byte for byte.


def credentials_aad(integration_id: UUID) -> bytes:
    """integration_credentials.ciphertext of one integration."""
    return b"integration_credentials:" + integration_id.bytes


def channel_target_aad(channel_id: UUID) -> bytes:
    """notification_channels.target_ciphertext of one channel."""
    return b"notification_channels.target:" + channel_id.bytes


def channel_secret_aad(channel_id: UUID) -> bytes:
    """notification_channels.secret_ciphertext of one channel."""
    return b"notification_channels.secret:" + channel_id.bytes


# -- errors -------------------------------------------------------------------
# Messages name the key id and what was being decrypted; never plaintext, key
# bytes or ciphertext.


class VaultError(Exception):
    """Base of every vault failure."""


class VaultConfigError(VaultError, ValueError):
    """The keys handed to `Vault` are unusable."""


class UnknownKeyError(VaultError):
    """The ciphertext names a key id the vault does not hold."""

    def __init__(self, key_id: str, what: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"{what} were encrypted with key {key_id!r}, which is not in IHM_VAULT_KEYS: "
            "add it back to decrypt, or rotate"
        )


class DecryptionError(VaultError):
    """Authentication failed: wrong key, tampered data, or a ciphertext from another row."""

    def __init__(self, key_id: str, what: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"{what} could not be decrypted with key {key_id!r}: wrong key or tampered data"
        )


# -- values -------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Sealed:
    """A ciphertext and the id of the key that made it, as stored side by side."""

    key_id: str
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"Sealed(key_id={self.key_id!r}, ciphertext=<{len(self.ciphertext)} bytes>)"


class Secret(Mapping[str, Any]):
    """Decrypted credentials: a read-only mapping that never prints its values.

    `repr`, `str` and f-strings show only how many fields there are, so a
    Secret passed to a logger or an exception message leaks nothing. Field
    names are not secret (`keys()`); values come out one at a time
    (`secret["botToken"]`) or, where the whole dict is needed, via `reveal()`.
    """

    __slots__ = ("_data",)

    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", copy.deepcopy(dict(data)))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("a Secret is read-only")

    def __getitem__(self, name: str) -> Any:
        # A copy, so nested values cannot be changed through the Secret either.
        return copy.deepcopy(self._data[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def reveal(self) -> dict[str, Any]:
        """The whole decrypted dict (a copy). Prefer reading single fields."""
        return copy.deepcopy(self._data)

    def __repr__(self) -> str:
        n = len(self._data)
        return f"Secret(<redacted: {n} field{'' if n == 1 else 's'}>)"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    # Immutable, so copies may share; but never serialised (arq pickles job
    # arguments into Redis): pass ids to jobs and load credentials there.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled: pass the integration id and load it again")


# -- the vault ----------------------------------------------------------------


class Vault:
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise VaultConfigError("the vault needs at least one key (IHM_VAULT_KEYS)")
        ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys:
            if not isinstance(key_id, str) or not key_id:
                raise VaultConfigError("every vault key needs a non-empty key id")
            if key_id in ciphers:
                raise VaultConfigError(f"vault key id {key_id!r} appears twice")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                length = len(key) if isinstance(key, bytes) else type(key).__name__
                raise VaultConfigError(
                    f"vault key {key_id!r} is {length} bytes; AES-256 needs {KEY_BYTES}"
                )
            ciphers[key_id] = AESGCM(key)
        self._ciphers = ciphers
        self._current = next(iter(ciphers))

    def __repr__(self) -> str:
        return f"Vault(key_ids={tuple(self._ciphers)!r})"

    @property
    def current_key_id(self) -> str:
        """The key new ciphertexts are made with (the first one configured)."""
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def needs_rotation(self, key_id: str) -> bool:
        return key_id != self._current

    # -- dicts (integration credentials) --

    def encrypt(self, payload: Mapping[str, Any], *, aad: bytes) -> Sealed:
        if not isinstance(payload, Mapping):
            raise TypeError("credentials must be a JSON object (a dict)")
        plaintext = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False)
        return self._seal(plaintext.encode(), aad)

    def decrypt(self, sealed: Sealed, *, aad: bytes, what: str = "credentials") -> Secret:
        """`what` names the ciphertext in error messages ("credentials of integration …")."""
        plaintext = self._open(sealed, aad, what)
        try:
            data = json.loads(plaintext)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # Authenticated but not a dict: written by encrypt_text under the same AAD.
            raise VaultError(f"{what} decrypted with key {sealed.key_id!r} are not a JSON object")
        return Secret(data)

    # -- single strings (channel targets and secrets) --

    def encrypt_text(self, text: str, *, aad: bytes) -> Sealed:
        return self._seal(text.encode(), aad)

    def decrypt_text(self, sealed: Sealed, *, aad: bytes, what: str = "secrets") -> str:
        return self._open(sealed, aad, what).decode()

    # -- rotation --

    def reseal(self, sealed: Sealed, *, aad: bytes, what: str = "secrets") -> Sealed:
        """The same plaintext under the current key (rotation); the plaintext never leaves."""
        return self._seal(self._open(sealed, aad, what), aad)

    # -- internals --

    def _seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        body = self._ciphers[self._current].encrypt(nonce, plaintext, aad)
        return Sealed(self._current, nonce + body)

    def _open(self, sealed: Sealed, aad: bytes, what: str) -> bytes:
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise UnknownKeyError(sealed.key_id, what)
        data = bytes(sealed.ciphertext)
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(sealed.key_id, what)
        try:
            return cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError(sealed.key_id, what) from None

"""The vault alone: AES-256-GCM with named keys, bound to where each ciphertext lives."""

from __future__ import annotations

import base64
import copy
import json
import pickle
import secrets
from collections.abc import Callable
from uuid import UUID, uuid4

import pytest

from db.vault import (
    DecryptionError,
    Sealed,
    Secret,
    UnknownKeyError,
    Vault,
    VaultConfigError,
    VaultError,
    channel_secret_aad,
    channel_target_aad,
    credentials_aad,
)

K1 = secrets.token_bytes(32)
K2 = secrets.token_bytes(32)
PAYLOAD = {"clientId": "client-42", "clientSecret": "s3cr3t-value-do-not-leak"}
INTEGRATION = UUID("11111111-1111-4111-8111-111111111111")
AAD = credentials_aad(INTEGRATION)


def key_material(key: bytes) -> list[str]:
    """Every way a key could show up in a message."""
    return [repr(key), key.hex(), base64.b64encode(key).decode()]


def assert_leaks_nothing(text: str, *keys: bytes) -> None:
    for value in PAYLOAD.values():
        assert value not in text
    for key in keys:
        for form in key_material(key):
            assert form not in text


def test_a_payload_round_trips() -> None:
    vault = Vault([("k1", K1)])

    sealed = vault.encrypt(PAYLOAD, aad=AAD)

    assert sealed.key_id == "k1"
    assert vault.decrypt(sealed, aad=AAD).reveal() == PAYLOAD


def test_a_text_round_trips() -> None:
    vault = Vault([("k1", K1)])
    aad = channel_target_aad(uuid4())

    sealed = vault.encrypt_text("apprise://token@host/ünïcode", aad=aad)

    assert vault.decrypt_text(sealed, aad=aad) == "apprise://token@host/ünïcode"


def test_the_ciphertext_does_not_contain_the_plaintext() -> None:
    sealed = Vault([("k1", K1)]).encrypt(PAYLOAD, aad=AAD)

    for value in PAYLOAD.values():
        assert value.encode() not in sealed.ciphertext
    assert json.dumps(PAYLOAD).encode() not in sealed.ciphertext


def test_encrypting_the_same_payload_twice_gives_different_ciphertexts() -> None:
    vault = Vault([("k1", K1)])

    first = vault.encrypt(PAYLOAD, aad=AAD)
    second = vault.encrypt(PAYLOAD, aad=AAD)

    assert first.ciphertext[:12] != second.ciphertext[:12]  # the random nonce
    assert first.ciphertext != second.ciphertext


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old = Vault([("k1", K1)]).encrypt(PAYLOAD, aad=AAD)
    vault = Vault([("k2", K2), ("k1", K1)])

    new = vault.encrypt(PAYLOAD, aad=AAD)

    assert vault.current_key_id == new.key_id == "k2"
    assert vault.decrypt(old, aad=AAD).reveal() == PAYLOAD
    assert vault.decrypt(new, aad=AAD).reveal() == PAYLOAD


def test_needs_rotation_for_every_key_but_the_first() -> None:
    vault = Vault([("k2", K2), ("k1", K1)])

    assert not vault.needs_rotation("k2")
    assert vault.needs_rotation("k1")
    assert vault.needs_rotation("k0")


def test_reseal_moves_a_ciphertext_to_the_current_key() -> None:
    old = Vault([("k1", K1)]).encrypt(PAYLOAD, aad=AAD)

    new = Vault([("k2", K2), ("k1", K1)]).reseal(old, aad=AAD)

    assert new.key_id == "k2"
    assert Vault([("k2", K2)]).decrypt(new, aad=AAD).reveal() == PAYLOAD


def test_a_missing_key_id_names_the_key_and_the_fix_without_leaking() -> None:
    sealed = Vault([("k0", K1)]).encrypt(PAYLOAD, aad=AAD)

    with pytest.raises(UnknownKeyError) as caught:
        Vault([("k1", K2)]).decrypt(sealed, aad=AAD)

    message = str(caught.value)
    assert message == (
        "credentials were encrypted with key 'k0', which is not in IHM_VAULT_KEYS: "
        "add it back to decrypt, or rotate"
    )
    assert caught.value.key_id == "k0"
    assert_leaks_nothing(message, K1, K2)


def test_a_wrong_key_under_a_known_id_is_a_clear_error_without_leaking() -> None:
    sealed = Vault([("k1", K1)]).encrypt(PAYLOAD, aad=AAD)

    with pytest.raises(DecryptionError) as caught:
        Vault([("k1", K2)]).decrypt(sealed, aad=AAD, what="credentials of integration x")

    message = str(caught.value)
    assert message == (
        "credentials of integration x could not be decrypted with key 'k1': "
        "wrong key or tampered data"
    )
    assert_leaks_nothing(message + repr(caught.value), K1, K2)
    assert caught.value.__cause__ is None  # no cryptography internals chained on


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda c: bytes([c[0] ^ 1]) + c[1:], id="nonce"),
        pytest.param(lambda c: c[:20] + bytes([c[20] ^ 1]) + c[21:], id="body"),
        pytest.param(lambda c: c[:-1] + bytes([c[-1] ^ 1]), id="tag"),
        pytest.param(lambda c: c[:-1], id="truncated"),
        pytest.param(lambda c: c[:10], id="shorter-than-a-nonce"),
        pytest.param(lambda c: c + b"\x00", id="extended"),
    ],
)
def test_a_tampered_ciphertext_does_not_decrypt(tamper: Callable[[bytes], bytes]) -> None:
    vault = Vault([("k1", K1)])
    sealed = vault.encrypt(PAYLOAD, aad=AAD)

    with pytest.raises(DecryptionError):
        vault.decrypt(Sealed("k1", tamper(sealed.ciphertext)), aad=AAD)


def test_a_ciphertext_bound_to_another_row_does_not_decrypt() -> None:
    vault = Vault([("k1", K1)])
    sealed = vault.encrypt(PAYLOAD, aad=credentials_aad(INTEGRATION))

    with pytest.raises(DecryptionError):
        vault.decrypt(sealed, aad=credentials_aad(uuid4()))


def test_a_channel_target_does_not_decrypt_as_that_channels_secret() -> None:
    vault = Vault([("k1", K1)])
    channel = uuid4()
    sealed = vault.encrypt_text("https://hooks.example/abc", aad=channel_target_aad(channel))

    with pytest.raises(DecryptionError):
        vault.decrypt_text(sealed, aad=channel_secret_aad(channel))


def test_the_aad_helpers_differ_per_table_column_and_row() -> None:
    same_id = uuid4()
    aads = {
        credentials_aad(same_id),
        channel_target_aad(same_id),
        channel_secret_aad(same_id),
        credentials_aad(uuid4()),
    }

    assert len(aads) == 4


def test_only_a_json_object_can_be_encrypted_as_credentials() -> None:
    with pytest.raises(TypeError):
        Vault([("k1", K1)]).encrypt(["not", "a", "dict"], aad=AAD)  # type: ignore[arg-type]


def test_a_text_ciphertext_does_not_decrypt_as_credentials() -> None:
    vault = Vault([("k1", K1)])
    sealed = vault.encrypt_text("just a string", aad=AAD)

    with pytest.raises(VaultError, match="not a JSON object"):
        vault.decrypt(sealed, aad=AAD)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        pytest.param([], "at least one key", id="no-keys"),
        pytest.param([("k1", K1[:16])], "'k1' is 16 bytes; AES-256 needs 32", id="short"),
        pytest.param([("k1", K1 + b"x")], "'k1' is 33 bytes", id="long"),
        pytest.param([("", K1)], "non-empty key id", id="empty-id"),
        pytest.param([("k1", K1), ("k1", K2)], "'k1' appears twice", id="duplicate-id"),
    ],
)
def test_the_vault_refuses_unusable_keys(keys: list[tuple[str, bytes]], message: str) -> None:
    with pytest.raises(VaultConfigError, match=message) as caught:
        Vault(keys)

    assert isinstance(caught.value, ValueError)
    assert_leaks_nothing(str(caught.value), K1, K2, K1[:16])


def test_the_vault_repr_shows_key_ids_but_no_key_bytes() -> None:
    vault = Vault([("k2", K2), ("k1", K1)])

    assert repr(vault) == "Vault(key_ids=('k2', 'k1'))"
    assert_leaks_nothing(repr(vault) + str(vault), K1, K2)


def test_a_secrets_repr_str_and_format_are_redacted() -> None:
    secret = Vault([("k1", K1)]).decrypt(Vault([("k1", K1)]).encrypt(PAYLOAD, aad=AAD), aad=AAD)

    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % (secret,)]  # noqa: UP031

    assert shown[0] == "Secret(<redacted: 2 fields>)"
    for text in shown + [repr(secret.keys()), repr(secret.values()), repr(secret.items())]:
        assert_leaks_nothing(text)
    assert repr(Secret({"a": 1})) == "Secret(<redacted: 1 field>)"


def test_a_sealed_repr_shows_the_key_id_and_size_only() -> None:
    sealed = Vault([("k1", K1)]).encrypt(PAYLOAD, aad=AAD)

    assert repr(sealed) == f"Sealed(key_id='k1', ciphertext=<{len(sealed.ciphertext)} bytes>)"
    assert str(sealed.ciphertext[12:20]) not in repr(sealed)


def test_a_secret_reads_like_a_read_only_mapping() -> None:
    secret = Secret({"clientId": "c", "scopes": ["a"]})

    assert secret["clientId"] == "c"
    assert secret.get("clientId") == "c"
    assert secret.get("missing") is None
    assert list(secret.keys()) == ["clientId", "scopes"]
    assert "scopes" in secret and len(secret) == 2
    assert secret == Secret({"clientId": "c", "scopes": ["a"]})
    with pytest.raises(TypeError):
        secret["clientId"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        secret._data = {}
    secret["scopes"].append("b")
    secret.reveal()["scopes"].append("c")
    assert secret["scopes"] == ["a"]


def test_a_secret_copies_as_itself_but_refuses_to_be_pickled() -> None:
    secret = Secret(PAYLOAD)

    assert copy.copy(secret) is secret
    assert copy.deepcopy({"s": secret})["s"] is secret
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)

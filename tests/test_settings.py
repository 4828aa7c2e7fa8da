from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import ConfigError, load_settings, parse_vault_keys

ROOT = Path(__file__).resolve().parent.parent
KEY = base64.b64encode(b"k" * 32).decode()
SECRET = "s" * 40
VALID = {
    "DATABASE_URL": "postgresql://ihm@127.0.0.1:1/ihm",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "IHM_JWT_SECRET": SECRET,
    "IHM_VAULT_KEYS": f"k1:{KEY}",
}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("IHM_") or name in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name)
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def run_ihm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IHM_")}
    clean.pop("DATABASE_URL", None)
    clean.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "ihm", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_missing_jwt_secret_stops_the_api_with_one_line_naming_it() -> None:
    env = {k: v for k, v in VALID.items() if k != "IHM_JWT_SECRET"}

    done = run_ihm("api", env=env)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "IHM_JWT_SECRET" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_database_url_stops_migrate_with_one_line_naming_it() -> None:
    done = run_ihm("migrate", env={})

    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "DATABASE_URL is required outside `ihm up`: set it to a postgresql:// URL"
    )
    assert done.stderr.count("\n") == 1


def test_a_malformed_value_stops_the_worker_without_a_traceback() -> None:
    done = run_ihm("worker", env={**VALID, "IHM_CHECK_TIMEOUT_SECONDS": "ten"})

    assert done.returncode == 2
    assert done.stderr.startswith("ihm: configuration error: IHM_CHECK_TIMEOUT_SECONDS:")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("IHM_CHECK_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("IHM_ENV", "staging", "'development' or 'production'"),
        ("IHM_SCHEDULER_TICK_SECONDS", "-1", "greater than 0"),
        ("IHM_MANUAL_CHECKS_PER_MINUTE", "0", "greater than or equal to 1"),
        ("DATABASE_URL", "mysql://x", "postgresql://"),
        ("REDIS_URL", "http://x", "redis://"),
        ("IHM_JWKS_URL", "ftp://x", "http(s)://"),
        ("IHM_JWT_SECRET", "too-short-secret", "at least 32 bytes"),
        ("IHM_VAULT_KEYS", "k1", "keyid:base64key"),
        ("IHM_VAULT_KEYS", "k1:not base64!", "not valid base64"),
        ("IHM_VAULT_KEYS", "k1:" + base64.b64encode(b"short").decode(), "decodes to 5 bytes"),
        ("IHM_VAULT_KEYS", f"k1:{KEY},k1:{KEY}", "appears twice"),
    ],
)
def test_a_malformed_value_is_named_with_what_is_wrong(
    environ: pytest.MonkeyPatch, name: str, value: str, complaint: str
) -> None:
    environ.setenv(name, value)

    with pytest.raises(ConfigError) as raised:
        load_settings()

    message = str(raised.value)
    assert message.startswith(f"{name}: ")
    assert complaint in message


@pytest.mark.parametrize("name", ["IHM_JWT_SECRET", "IHM_VAULT_KEYS"])
def test_errors_about_secrets_never_echo_the_value(environ: pytest.MonkeyPatch, name: str) -> None:
    leaked = "hunter2-very-secret"
    environ.setenv(name, leaked)

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert leaked not in str(raised.value)


def test_defaults_follow_the_design(environ: pytest.MonkeyPatch) -> None:
    settings = load_settings()

    assert settings.check_timeout_seconds == 10
    assert settings.env == "development"
    assert settings.scheduler_tick_seconds == 15
    assert settings.manual_check_cooldown_seconds == 5
    assert settings.manual_checks_per_minute == 30
    assert (settings.jwt_audience, settings.admin_audience) == ("ihm", "ihm-admin")
    assert SECRET not in repr(settings)


def test_the_first_vault_key_encrypts_and_all_are_kept() -> None:
    other = base64.b64encode(b"o" * 32).decode()

    keys = parse_vault_keys(f"new:{KEY}, old:{other}")

    assert [k.key_id for k in keys] == ["new", "old"]
    assert keys[0].key == b"k" * 32
    assert KEY not in repr(keys)

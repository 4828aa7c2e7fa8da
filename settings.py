"""Every environment variable of DESIGN.md, read once at start-up.

pydantic-settings does the reading and type coercion; this module adds the
rules (formats, ranges, which command needs what) and turns any failure into
one line that names the variable, so an operator never sees a traceback.
"""

from __future__ import annotations

import base64
import binascii
import sys
from dataclasses import dataclass
from typing import Literal, NoReturn, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_JWT_SECRET_BYTES = 32
VAULT_KEY_BYTES = 32  # AES-256-GCM

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class VaultKey:
    key_id: str
    key: bytes

    def __repr__(self) -> str:
        return f"VaultKey(key_id={self.key_id!r}, key=<redacted>)"


def parse_vault_keys(raw: str) -> tuple[VaultKey, ...]:
    """Parse `keyid:base64key[,keyid:base64key...]`; the first key encrypts."""
    keys: list[VaultKey] = []
    for n, part in enumerate(p.strip() for p in raw.split(",")):
        if not part:
            continue
        key_id, sep, encoded = part.partition(":")
        if not sep or not key_id or not encoded:
            raise ValueError(f"entry {n + 1} is not of the form keyid:base64key")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"key {key_id!r} is not valid base64") from None
        if len(key) != VAULT_KEY_BYTES:
            raise ValueError(
                f"key {key_id!r} decodes to {len(key)} bytes; AES-256 needs {VAULT_KEY_BYTES}"
            )
        if any(k.key_id == key_id for k in keys):
            raise ValueError(f"key id {key_id!r} appears twice")
        keys.append(VaultKey(key_id, key))
    if not keys:
        raise ValueError("no key given")
    return tuple(keys)


class Settings(BaseSettings):
    # An empty variable counts as unset (compose passes `VAR:` through that way).
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", env_ignore_empty=True)

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    jwt_secret: SecretStr | None = Field(default=None, alias="IHM_JWT_SECRET")
    jwt_audience: str = Field(default="ihm", alias="IHM_JWT_AUDIENCE", min_length=1)
    admin_audience: str = Field(default="ihm-admin", alias="IHM_ADMIN_AUDIENCE", min_length=1)
    jwks_url: str | None = Field(default=None, alias="IHM_JWKS_URL")
    jwt_issuer: str | None = Field(default=None, alias="IHM_JWT_ISSUER")
    vault_keys_raw: SecretStr | None = Field(default=None, alias="IHM_VAULT_KEYS")
    check_timeout_seconds: float = Field(default=10.0, alias="IHM_CHECK_TIMEOUT_SECONDS", gt=0)
    env: Literal["development", "production"] = Field(default="development", alias="IHM_ENV")
    scheduler_tick_seconds: float = Field(
        default=15.0, alias="IHM_SCHEDULER_TICK_SECONDS", gt=0, le=3600
    )
    manual_check_cooldown_seconds: float = Field(
        default=5.0, alias="IHM_MANUAL_CHECK_COOLDOWN_SECONDS", ge=0
    )
    manual_checks_per_minute: int = Field(default=30, alias="IHM_MANUAL_CHECKS_PER_MINUTE", ge=1)
    # Beyond DESIGN.md's table: outgoing email for alert notifications.
    smtp_url: SecretStr | None = Field(default=None, alias="IHM_SMTP_URL")
    smtp_sender: str = Field(
        default="Integration Health Monitor <monitor@localhost>", alias="IHM_SMTP_SENDER"
    )
    # Beyond DESIGN.md's table: browser origins (besides the API's own) allowed to open
    # the GraphQL WebSocket, comma-separated, e.g. "https://app.example.com".
    allowed_origins_raw: str = Field(default="", alias="IHM_ALLOWED_ORIGINS")

    @field_validator("database_url")
    @classmethod
    def _postgres_dsn(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return v

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return v

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_JWT_SECRET_BYTES} bytes long")
        return v

    @field_validator("vault_keys_raw")
    @classmethod
    def _vault_keys(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            parse_vault_keys(v.get_secret_value())
        return v

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("smtp://", "smtps://")):
            raise ValueError("must be an smtp:// or smtps:// URL")
        return v

    @field_validator("allowed_origins_raw")
    @classmethod
    def _origins(cls, v: str) -> str:
        for origin in (o.strip() for o in v.split(",") if o.strip()):
            if origin != "*" and not origin.startswith(("https://", "http://")):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return v

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.allowed_origins_raw.split(",") if o.strip())

    # -- what each command needs -------------------------------------------

    @property
    def vault_keys(self) -> tuple[VaultKey, ...]:
        raw = self._need(self.vault_keys_raw, "IHM_VAULT_KEYS", "keyid:base64key[,...]")
        return parse_vault_keys(raw.get_secret_value())

    def require_database(self) -> str:
        return self._need(self.database_url, "DATABASE_URL", "a postgresql:// URL")

    def require_redis(self) -> str:
        return self._need(self.redis_url, "REDIS_URL", "a redis:// URL")

    def require_jwt_secret(self) -> str:
        secret = self._need(
            self.jwt_secret, "IHM_JWT_SECRET", f"a random string of {MIN_JWT_SECRET_BYTES}+ bytes"
        )
        return secret.get_secret_value()

    def require_runtime(self) -> None:
        """Everything the API and the worker cannot start without."""
        self.require_database()
        self.require_redis()
        self.require_jwt_secret()
        _ = self.vault_keys

    @staticmethod
    def _need(value: T | None, name: str, what: str) -> T:
        if value is None:
            raise ConfigError(f"{name} is required outside `ihm up`: set it to {what}")
        return value


def describe_validation_error(error: ValidationError) -> str:
    first = error.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "settings"
    message = first["msg"].removeprefix("Value error, ")
    # Never echo the input: it may be a secret.
    return f"{name}: {message}"


def load_settings() -> Settings:
    """Read the environment; raise ConfigError naming the first bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def exit_on_config_error(error: ConfigError) -> NoReturn:
    print(f"ihm: configuration error: {error}", file=sys.stderr)
    raise SystemExit(2)

"""Each adapter's configuration and credential shapes, validated when saved.

`IntegrationConfig` is a discriminated union keyed on `integration_type`, so
an adapter receives its own typed config. Keys are camelCase as in DESIGN.md.
Credential shapes are checked the same way before they reach the vault.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel


class InvalidConfig(ValueError):
    """Bad configuration or credentials; `field` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _http_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]
LatencyMs = Annotated[int, Field(gt=0, le=600_000)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class HttpConfig(_Model):
    integration_type: Literal["http"] = "http"
    # Before `url`, which may be relative to it.
    base_url: HttpUrl | None = None
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    method: Literal["GET", "HEAD"] = "GET"
    # Healthy answers; left out: 200-399.
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] | None = None
    degraded_latency_ms: LatencyMs | None = None

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, url: str, info: ValidationInfo) -> str:
        base = info.data.get("base_url")
        _http_url(f"{base}/{url.lstrip('/')}" if base and not urlparse(url).scheme else url)
        return url

    @property
    def target_url(self) -> str:
        if self.base_url and not urlparse(self.url).scheme:
            return f"{self.base_url}/{self.url.lstrip('/')}"
        return self.url

    def is_expected(self, status: int) -> bool:
        if self.expected_status is None:
            return 200 <= status <= 399
        return status in self.expected_status


class SlackConfig(_Model):
    integration_type: Literal["slack"] = "slack"
    base_url: HttpUrl = "https://slack.com/api"
    # Scopes the workspace's exports need; a missing one makes the check DEGRADED.
    required_scopes: list[str] = Field(default_factory=lambda: ["chat:write"])
    degraded_latency_ms: LatencyMs | None = None


class GmailConfig(_Model):
    integration_type: Literal["gmail"] = "gmail"
    base_url: HttpUrl = "https://gmail.googleapis.com"
    token_url: HttpUrl = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    degraded_latency_ms: LatencyMs | None = None


class GoogleCalendarConfig(_Model):
    integration_type: Literal["google_calendar"] = "google_calendar"
    base_url: HttpUrl = "https://www.googleapis.com"
    token_url: HttpUrl = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    # Read-only access to the primary calendar is DEGRADED when writing is needed.
    require_write: bool = True
    degraded_latency_ms: LatencyMs | None = None


class XledgerConfig(_Model):
    integration_type: Literal["xledger"] = "xledger"
    base_url: HttpUrl = "https://www.xledger.net"
    degraded_latency_ms: LatencyMs | None = None


class Dynamics365Config(_Model):
    integration_type: Literal["dynamics365"] = "dynamics365"
    tenant_id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9.\-]+$")]
    environment: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")]
    base_url: HttpUrl = "https://api.businesscentral.dynamics.com"
    # Left out: Microsoft Entra's token endpoint for the tenant.
    token_url: HttpUrl | None = None
    scope: str = "https://api.businesscentral.dynamics.com/.default"
    degraded_latency_ms: LatencyMs | None = None

    @property
    def resolved_token_url(self) -> str:
        return self.token_url or (
            f"https://login.microsoftonline.com/{self.tenant_id}/oauth2/v2.0/token"
        )


IntegrationConfig = Annotated[
    HttpConfig
    | SlackConfig
    | GmailConfig
    | GoogleCalendarConfig
    | XledgerConfig
    | Dynamics365Config,
    Field(discriminator="integration_type"),
]
_CONFIG = TypeAdapter[IntegrationConfig](IntegrationConfig)


# -- credentials --------------------------------------------------------------

Text = Annotated[str, Field(min_length=1, max_length=4096)]


class HttpCredentials(_Model):
    bearer_token: Text | None = None
    username: Text | None = None
    password: Text | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> HttpCredentials:
        basic = self.username is not None or self.password is not None
        if basic and (self.username is None or self.password is None):
            raise ValueError("username and password go together")
        if basic and self.bearer_token is not None:
            raise ValueError("give either bearerToken or username/password, not both")
        return self


class SlackCredentials(_Model):
    bot_token: Text


class GoogleCredentials(_Model):
    access_token: Text | None = None
    refresh_token: Text
    client_id: Text
    client_secret: Text


class XledgerCredentials(_Model):
    api_token: Text


class DynamicsCredentials(_Model):
    client_id: Text
    client_secret: Text


CREDENTIAL_MODELS: dict[str, type[_Model]] = {
    "http": HttpCredentials,
    "slack": SlackCredentials,
    "gmail": GoogleCredentials,
    "google_calendar": GoogleCredentials,
    "xledger": XledgerCredentials,
    "dynamics365": DynamicsCredentials,
}


def _first_problem(prefix: str, error: ValidationError) -> InvalidConfig:
    first = error.errors()[0]
    # Skip the union's tag in the location ("http", "url") -> "url".
    parts = [str(p) for p in first["loc"] if str(p) not in CREDENTIAL_MODELS]
    field = ".".join([prefix, *parts]) if parts else prefix
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "is not a setting of this integration type"
    # Never echo the input: credentials may be in it.
    return InvalidConfig(field, message)


def parse_config(integration_type: str, config: dict[str, Any] | None) -> IntegrationConfig:
    if integration_type not in CREDENTIAL_MODELS:
        raise InvalidConfig("integrationType", f"unknown integration type {integration_type!r}")
    if config is not None and not isinstance(config, dict):
        raise InvalidConfig("config", "must be a JSON object")
    data = {k: v for k, v in (config or {}).items() if k != "integrationType"}
    try:
        return _CONFIG.validate_python({**data, "integration_type": integration_type})
    except ValidationError as exc:
        raise _first_problem("config", exc) from None


def parse_credentials(integration_type: str, credentials: Any) -> dict[str, str]:
    """Check a credentials object's shape; return it with camelCase keys, Nones dropped."""
    model = CREDENTIAL_MODELS.get(integration_type)
    if model is None:
        raise InvalidConfig("integrationType", f"unknown integration type {integration_type!r}")
    if not isinstance(credentials, dict):
        raise InvalidConfig("credentials", "must be a JSON object")
    try:
        parsed = model.model_validate(credentials)
    except ValidationError as exc:
        raise _first_problem("credentials", exc) from None
    return parsed.model_dump(by_alias=True, exclude_none=True)


def config_json(config: IntegrationConfig) -> dict[str, Any]:
    """The stored (camelCase) form of a validated config."""
    return config.model_dump(by_alias=True, exclude_none=True, exclude={"integration_type"})

from __future__ import annotations

from typing import Any

import pytest

from workers.checks.config import (
    Dynamics365Config,
    HttpConfig,
    InvalidConfig,
    config_json,
    parse_config,
    parse_credentials,
)


@pytest.mark.parametrize(
    ("integration_type", "config"),
    [
        ("http", {"url": "https://example.com/health"}),
        ("http", {"url": "/health", "baseUrl": "https://example.com", "method": "HEAD"}),
        ("http", {"url": "https://x.test", "expectedStatus": [200, 204], "degradedLatencyMs": 900}),
        ("slack", {}),
        ("slack", {"baseUrl": "https://slack.test/api", "requiredScopes": ["users:read"]}),
        ("gmail", {"tokenUrl": "https://oauth.test/token"}),
        ("google_calendar", {"requireWrite": False}),
        ("xledger", {"baseUrl": "https://demo.xledger.net"}),
        ("dynamics365", {"tenantId": "contoso.onmicrosoft.com", "environment": "production"}),
    ],
)
def test_valid_configurations_are_accepted_and_round_trip(
    integration_type: str, config: dict[str, Any]
) -> None:
    parsed = parse_config(integration_type, config)

    assert parsed.integration_type == integration_type
    assert parse_config(integration_type, config_json(parsed)) == parsed


@pytest.mark.parametrize(
    ("integration_type", "config", "field", "complaint"),
    [
        ("http", {}, "config.url", "Field required"),
        ("http", {"url": "ftp://files.test"}, "config.url", "absolute http(s) URL"),
        ("http", {"url": "/relative"}, "config.url", "absolute http(s) URL"),
        ("http", {"url": "https://x.test", "method": "POST"}, "config.method", "'GET' or 'HEAD'"),
        (
            "http",
            {"url": "https://x.test", "expectedStatus": [99]},
            "config.expectedStatus.0",
            "greater than or equal to 100",
        ),
        (
            "http",
            {"url": "https://x.test", "degradedLatencyMs": 0},
            "config.degradedLatencyMs",
            "greater than 0",
        ),
        ("slack", {"baseUrl": "slack.com"}, "config.baseUrl", "absolute http(s) URL"),
        ("slack", {"botToken": "xoxb-1"}, "config.botToken", "not a setting"),
        ("dynamics365", {"environment": "production"}, "config.tenantId", "Field required"),
        ("dynamics365", {"tenantId": "a/b", "environment": "p"}, "config.tenantId", "pattern"),
        ("google_calendar", {"requireWrite": "maybe"}, "config.requireWrite", "boolean"),
        ("teams", {}, "integrationType", "unknown integration type"),
    ],
)
def test_invalid_configuration_is_refused_naming_the_field(
    integration_type: str, config: dict[str, Any], field: str, complaint: str
) -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_config(integration_type, config)

    assert raised.value.field == field
    assert complaint in raised.value.message


def test_a_configuration_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidConfig, match="must be a JSON object"):
        parse_config("http", ["https://x.test"])  # type: ignore[arg-type]


def test_http_expected_statuses_default_to_success_and_redirects() -> None:
    default = HttpConfig(url="https://x.test")
    explicit = HttpConfig(url="https://x.test", expected_status=[418])

    assert [default.is_expected(s) for s in (200, 302, 399, 400, 500)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert explicit.is_expected(418)
    assert not explicit.is_expected(200)


def test_dynamics_token_url_defaults_to_the_tenant_endpoint() -> None:
    config = Dynamics365Config(tenant_id="contoso", environment="sandbox")

    assert config.resolved_token_url == (
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
    )


@pytest.mark.parametrize(
    ("integration_type", "credentials", "expected"),
    [
        ("slack", {"botToken": "xoxb-1"}, {"botToken": "xoxb-1"}),
        ("http", {}, {}),
        ("http", {"username": "u", "password": "p"}, {"username": "u", "password": "p"}),
        ("xledger", {"apiToken": "t"}, {"apiToken": "t"}),
        (
            "gmail",
            {"refreshToken": "r", "clientId": "c", "clientSecret": "s"},
            {"refreshToken": "r", "clientId": "c", "clientSecret": "s"},
        ),
    ],
)
def test_credential_shapes_are_checked_and_normalised(
    integration_type: str, credentials: dict[str, str], expected: dict[str, str]
) -> None:
    assert parse_credentials(integration_type, credentials) == expected


@pytest.mark.parametrize(
    ("integration_type", "credentials", "field"),
    [
        ("slack", {}, "credentials.botToken"),
        ("slack", {"botToken": ""}, "credentials.botToken"),
        ("http", {"username": "u"}, "credentials"),
        ("http", {"bearerToken": "t", "username": "u", "password": "p"}, "credentials"),
        ("dynamics365", {"clientId": "c"}, "credentials.clientSecret"),
        ("xledger", {"apiToken": "t", "extra": "x"}, "credentials.extra"),
        ("xledger", "a-token", "credentials"),
    ],
)
def test_bad_credentials_are_refused_without_echoing_them(
    integration_type: str, credentials: Any, field: str
) -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_credentials(integration_type, credentials)

    assert raised.value.field == field
    assert "xoxb" not in str(raised.value)
    assert "a-token" not in str(raised.value)

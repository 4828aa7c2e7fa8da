"""Plain-language messages and guidance for every kind of failure (pure functions).

Adapters say what happened (category, a short detail they are sure is safe);
this module says it the way a coordinator reads it and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.checks.result import ErrorCategory, HealthError, RecoveryAction


@dataclass(frozen=True)
class Provider:
    """How guidance names a provider and what re-authorizing it means."""

    display_name: str
    # oauth2 | api_key | bearer | client_credentials (a pasted client id/secret) | none
    auth_kind: str
    docs_url: str | None = None
    status_page: str | None = None

    @property
    def credential_word(self) -> str:
        return {
            "api_key": "API key",
            "oauth2": "authorization",
            "bearer": "token",
            "client_credentials": "client ID or secret",
        }.get(self.auth_kind, "credentials")


def auth_rejected(provider: Provider, detail: str = "") -> HealthError:
    if provider.auth_kind == "oauth2":
        return HealthError(
            ErrorCategory.AUTH,
            f"{provider.display_name} no longer accepts the connection's authorization"
            + (f" ({detail})" if detail else "")
            + ".",
            f"Reconnect {provider.display_name}: sign in again from the integration's settings "
            "to grant access anew.",
            RecoveryAction.REAUTHENTICATE,
            provider.docs_url,
        )
    return HealthError(
        ErrorCategory.AUTH,
        f"{provider.display_name} rejected the {provider.credential_word}"
        + (f" ({detail})" if detail else "")
        + ".",
        f"{provider.display_name} rejected the {provider.credential_word}: check the "
        "credentials in the integration's settings and paste a valid one.",
        RecoveryAction.UPDATE_CREDENTIALS,
        provider.docs_url,
    )


def missing_permission(provider: Provider, what: str) -> HealthError:
    action = (
        RecoveryAction.REAUTHENTICATE
        if provider.auth_kind == "oauth2"
        else RecoveryAction.UPDATE_CREDENTIALS
    )
    return HealthError(
        ErrorCategory.AUTH,
        f"{provider.display_name} is connected but lacks a permission: {what}.",
        f"Grant the missing permission to the {provider.display_name} connection "
        "(reconnect it with the required access), or exports that need it will fail.",
        action,
        provider.docs_url,
    )


def missing_credentials(provider: Provider) -> HealthError:
    return HealthError(
        ErrorCategory.CONFIGURATION,
        f"No credentials are stored for {provider.display_name}.",
        f"Add the {provider.display_name} credentials in the integration's settings.",
        RecoveryAction.UPDATE_CREDENTIALS,
        provider.docs_url,
    )


def unreadable_credentials(provider: Provider) -> HealthError:
    return HealthError(
        ErrorCategory.CONFIGURATION,
        f"The stored {provider.display_name} credentials cannot be decrypted by this server.",
        f"Enter the {provider.display_name} credentials again in the integration's settings "
        "(an operator retired the key they were encrypted with).",
        RecoveryAction.UPDATE_CREDENTIALS,
        provider.docs_url,
    )


def invalid_configuration(provider: Provider, detail: str) -> HealthError:
    return HealthError(
        ErrorCategory.CONFIGURATION,
        f"The {provider.display_name} configuration is invalid: {detail}.",
        "Fix the integration's configuration in its settings; the monitor checks again "
        "on its next run.",
        RecoveryAction.FIX_CONFIGURATION,
        provider.docs_url,
    )


def timed_out(provider: Provider, seconds: float) -> HealthError:
    return HealthError(
        ErrorCategory.TIMEOUT,
        f"{provider.display_name} did not answer within {seconds:g} seconds.",
        "Usually temporary: the monitor keeps checking by itself. If it lasts, look at "
        f"{provider.display_name}'s status page.",
        RecoveryAction.WAIT_AND_RETRY,
        provider.status_page or provider.docs_url,
        transient=True,
    )


def network_failure(provider: Provider, detail: str) -> HealthError:
    return HealthError(
        ErrorCategory.NETWORK,
        f"Could not reach {provider.display_name}: {detail}.",
        "Usually temporary: the monitor keeps retrying by itself. If it lasts, check the "
        "address in the integration's settings and the network between us and the provider.",
        RecoveryAction.WAIT_AND_RETRY,
        provider.docs_url,
        transient=True,
    )


def rate_limited(provider: Provider, retry_after: float | None) -> HealthError:
    wait = f" for {retry_after:g} seconds" if retry_after else ""
    return HealthError(
        ErrorCategory.RATE_LIMITED,
        f"{provider.display_name} is limiting our requests{wait}.",
        "Nothing to do: checks slow down on their own so the provider's quota stays "
        "free for exports.",
        RecoveryAction.WAIT_AND_RETRY,
        provider.docs_url,
        retry_after_seconds=retry_after,
    )


def provider_error(provider: Provider, detail: str, *, transient: bool = True) -> HealthError:
    return HealthError(
        ErrorCategory.PROVIDER_ERROR,
        f"{provider.display_name} answered with an error: {detail}.",
        f"The problem is on {provider.display_name}'s side; see its status page. The "
        "monitor keeps checking and reports when it recovers.",
        RecoveryAction.CHECK_PROVIDER_STATUS,
        provider.status_page or provider.docs_url,
        transient=transient,
    )


def slow(provider: Provider, latency_ms: int, threshold_ms: int) -> HealthError:
    return HealthError(
        ErrorCategory.PROVIDER_ERROR,
        f"{provider.display_name} answered, but slowly: {latency_ms} ms "
        f"(the limit is {threshold_ms} ms).",
        "Exports may be slow or time out. Usually temporary; if it lasts, see the "
        "provider's status page.",
        RecoveryAction.WAIT_AND_RETRY,
        provider.status_page or provider.docs_url,
    )


def unexpected(provider: Provider, what: str = "") -> HealthError:
    return HealthError(
        ErrorCategory.UNKNOWN,
        f"The check of {provider.display_name} failed unexpectedly"
        + (f" ({what})" if what else "")
        + ".",
        "The monitor retries by itself. If it keeps failing, contact support.",
        RecoveryAction.CONTACT_SUPPORT,
        provider.docs_url,
    )

"""APPRISE channels: any Apprise URL (ntfy, Teams, Discord, Slack, Telegram, json:// …).

Apprise's plugins are blocking (requests); `async_notify` runs them in its own executor.
Building the Apprise object (loading its plugins, parsing the URL) is blocking too, so it
runs in a thread.
"""

from __future__ import annotations

import asyncio

import apprise

from workers.delivery.messages import Message
from workers.delivery.policy import Outcome

TIMEOUT_SECONDS = 30.0
_NOTIFY_TYPES = {
    "INFO": apprise.NotifyType.INFO,
    "WARNING": apprise.NotifyType.WARNING,
    "CRITICAL": apprise.NotifyType.FAILURE,
}


def _service(url: str) -> apprise.Apprise | None:
    # Memory only: the worker's disk is not the place for per-service caches.
    apobj = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
    return apobj if apobj.add(url) else None


def _scheme(url: str) -> str:
    scheme = url.partition("://")[0]
    return scheme if scheme.isalnum() else "apprise"


async def send_apprise(
    message: Message, *, url: str, timeout_seconds: float = TIMEOUT_SECONDS
) -> Outcome:
    """Errors name the URL's scheme only: the rest of an Apprise URL is usually the token."""
    apobj = await asyncio.to_thread(_service, url)
    if apobj is None:
        return Outcome.give_up("Apprise does not recognise this URL: check its format")
    try:
        async with asyncio.timeout(timeout_seconds + 5):
            result = await apobj.async_notify(
                body=message.apprise_body(),
                title=message.apprise_title(),
                notify_type=_NOTIFY_TYPES.get(message.severity, apprise.NotifyType.INFO),
                body_format=apprise.NotifyFormat.TEXT,
                timeout=timeout_seconds,
            )
    except TimeoutError:
        return Outcome.retry(f"the {_scheme(url)}:// service did not answer in time")
    with result:
        if result:
            return Outcome.delivered()
        status = getattr(result.status, "name", "FAILURE").lower()
    return Outcome.retry(f"the {_scheme(url)}:// service did not accept the message ({status})")

"""WEBHOOK channels: a signed JSON POST.

Headers: `X-IHM-Timestamp` (unix seconds), `X-IHM-Signature: sha256=<hex>` (HMAC-SHA256
with the channel's secret over `f"{timestamp}.{body}"`, when the channel has a secret),
`X-IHM-Idempotency-Key` (the same on every retry of a message: receivers drop duplicates).
2xx is delivered; 408, 429 and 5xx are retried; any other answer is final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import httpx

from workers.delivery.messages import Message
from workers.delivery.policy import Outcome

TIMESTAMP_HEADER = "X-IHM-Timestamp"
SIGNATURE_HEADER = "X-IHM-Signature"
IDEMPOTENCY_HEADER = "X-IHM-Idempotency-Key"
SIGNATURE_PREFIX = "sha256="
TIMEOUT_SECONDS = 10.0
_RETRYABLE_4XX = (408, 429)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-IHM-Signature value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """True when `signature` (the X-IHM-Signature header) signs `body` (the raw request body)
    at `timestamp` (the X-IHM-Timestamp header) with `secret`, and the timestamp is within
    `tolerance_seconds` of `now` (unix seconds; default the clock), so that a captured
    request cannot be replayed later."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_seconds:
        return False
    expected = sign(secret, str(sent_at), body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def encode(message: Message) -> bytes:
    return json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False).encode()


def headers_for(message: Message, body: bytes, secret: str | None, now: datetime) -> dict[str, str]:
    timestamp = str(int(now.timestamp()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        IDEMPOTENCY_HEADER: message.idempotency_key,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None


async def send_webhook(
    http: httpx.AsyncClient,
    message: Message,
    *,
    url: str,
    secret: str | None,
    now: datetime | None = None,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> Outcome:
    """Errors name the status code or the kind of network failure: never the URL (its path
    or query may be the token) nor the response body."""
    body = encode(message)
    # The wall clock, whatever the caller schedules by: receivers check it against theirs.
    sent_at = now or datetime.now(UTC)
    try:
        # Streamed and never read: the answer's body is not ours to store, nor to download.
        async with http.stream(
            "POST",
            url,
            content=body,
            headers=headers_for(message, body, secret, sent_at),
            timeout=timeout_seconds,
            follow_redirects=False,
        ) as response:
            code = response.status_code
            retry_after = _retry_after(response)
    except httpx.TimeoutException:
        return Outcome.retry(f"the webhook did not answer within {timeout_seconds:g} s")
    except httpx.InvalidURL:
        return Outcome.give_up("the webhook URL is not valid")
    except httpx.UnsupportedProtocol:
        return Outcome.give_up("the webhook URL is not an http(s) URL")
    except httpx.HTTPError as exc:
        return Outcome.retry(f"could not reach the webhook ({type(exc).__name__})")
    if 200 <= code < 300:
        return Outcome.delivered()
    if 300 <= code < 400:
        return Outcome.give_up(f"the webhook answered with a redirect ({code}): use the final URL")
    if code in _RETRYABLE_4XX or code >= 500:
        return Outcome.retry(f"the webhook answered {code}", retry_after_seconds=retry_after)
    return Outcome.give_up(f"the webhook refused the message ({code})")

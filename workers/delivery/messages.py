"""A queued message (the outbox payload) and how each channel renders it."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from db.outbox import build_payload

PRODUCT = "Integration Health Monitor"
TEST_TITLE = "Test notification"
TEST_BODY = (
    "This is a test message from the Integration Health Monitor. "
    "If you can read it, this channel works: alerts for your organization will arrive here."
)


@dataclass(frozen=True)
class Message:
    """The payload as stored in the outbox; `payload` is exactly what a webhook receives."""

    payload: dict[str, Any]

    @property
    def idempotency_key(self) -> str:
        return str(self.payload["idempotencyKey"])

    @property
    def severity(self) -> str:
        return str(self.payload["severity"])

    @property
    def title(self) -> str:
        return str(self.payload["title"])

    @property
    def body(self) -> str:
        return str(self.payload["body"])

    @property
    def text(self) -> str:
        """Plain text without links."""
        return str(self.payload["text"])

    @property
    def is_test(self) -> bool:
        return self.payload.get("type") == "test"

    # -- renderings --

    @property
    def subject(self) -> str:
        # Headers cannot hold line breaks (and must not: header injection).
        return " ".join(f"[{self.severity}] {self.title}".split())[:200]

    def email_text(self) -> str:
        return f"{self.text}\n\n-- \n{_footer(self.idempotency_key)}\n"

    def email_html(self) -> str:
        # Everything from the alert is escaped: titles and bodies quote provider messages.
        paragraphs = "".join(
            f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
            for p in self.body.split("\n\n")
            if p.strip()
        )
        footer = html.escape(_footer(self.idempotency_key))
        return (
            "<!doctype html><html><body>"
            f"<h2>[{html.escape(self.severity)}] {html.escape(self.title)}</h2>"
            f"{paragraphs}"
            f'<hr><p style="color:#666;font-size:12px">{footer}</p>'
            "</body></html>"
        )

    def apprise_title(self) -> str:
        return self.subject

    def apprise_body(self) -> str:
        """The body without the title line (Apprise sends the title apart) and the key footer."""
        return f"{self.body}\n\n{_footer(self.idempotency_key)}"


def _footer(idempotency_key: str) -> str:
    return f"Sent by the {PRODUCT}. Message key: {idempotency_key}"


def channel_test_message(org_id: UUID, channel_id: UUID, *, now: datetime | None = None) -> Message:
    """A fresh test message for `testNotificationChannel` (its own key: every test is sent)."""
    return Message(
        build_payload(
            org_id=org_id,
            alert_id=None,
            severity="INFO",
            title=TEST_TITLE,
            body=TEST_BODY,
            idempotency_key=f"test:{channel_id}:{uuid4().hex}",
            created_at=now or datetime.now(UTC),
            message_type="test",
        )
    )

"""EMAIL channels: one message per delivery over SMTP (aiosmtplib), plain text with an HTML
alternative. `IHM_SMTP_URL` is `smtp://user:pass@host:port` (STARTTLS when the server offers
it) or `smtps://…` (TLS from the first byte)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib

from workers.delivery.messages import Message
from workers.delivery.policy import Outcome

IDEMPOTENCY_HEADER = "X-IHM-Idempotency-Key"
# SMTP's own line limit (998) rather than the customary 78: folding would put a long
# idempotency key on a continuation line, and receivers would read it with a leading space.
MAIL_POLICY = policy.SMTP.clone(max_line_length=998)
NOT_CONFIGURED = "email is not configured: set IHM_SMTP_URL"
TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class SmtpConfig:
    hostname: str
    port: int | None
    username: str | None
    password: str | None
    use_tls: bool  # smtps://: implicit TLS

    def __repr__(self) -> str:
        return (
            f"SmtpConfig(hostname={self.hostname!r}, port={self.port!r}, "
            f"username={'<set>' if self.username else None}, password=<redacted>, "
            f"use_tls={self.use_tls!r})"
        )

    @property
    def where(self) -> str:
        """host:port, for error messages (no credentials)."""
        default = 465 if self.use_tls else 25
        return f"{self.hostname}:{self.port or default}"


def parse_smtp_url(url: str) -> SmtpConfig:
    """ValueError (naming IHM_SMTP_URL, never repeating it) when the URL is unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("IHM_SMTP_URL is not a valid URL") from None
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("IHM_SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("IHM_SMTP_URL names no host")
    return SmtpConfig(
        hostname=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        use_tls=parts.scheme == "smtps",
    )


def recipients_of(target: str) -> list[str]:
    return [a.strip() for a in re.split(r"[,;]", target) if a.strip()]


def message_id(idempotency_key: str, sender: str) -> str:
    """Stable per message: a receiver (or a mail client's thread view) can drop duplicates."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "ihm.localhost"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<ihm.{digest}@{domain}>"


def build_email(
    message: Message, *, sender: str, recipients: list[str], now: datetime | None = None
) -> EmailMessage:
    email = EmailMessage(policy=MAIL_POLICY)
    email["Subject"] = message.subject
    email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Date"] = format_datetime(now or datetime.now(UTC))
    email["Message-ID"] = message_id(message.idempotency_key, sender)
    email[IDEMPOTENCY_HEADER] = message.idempotency_key
    email["X-IHM-Severity"] = message.severity
    # Vacation responders and ticket systems must not answer an alert.
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(message.email_text())
    email.add_alternative(message.email_html(), subtype="html")
    return email


async def send_email(
    message: Message,
    *,
    target: str,
    smtp_url: str | None,
    sender: str,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> Outcome:
    """Errors name the server and the SMTP code, never credentials, addresses or server text
    (servers echo addresses back)."""
    if not smtp_url:
        return Outcome.retry(NOT_CONFIGURED)
    try:
        config = parse_smtp_url(smtp_url)
    except ValueError as exc:
        return Outcome.retry(str(exc))
    recipients = recipients_of(target)
    if not recipients:
        return Outcome.give_up("the channel has no email address")
    email = build_email(message, sender=sender, recipients=recipients)
    try:
        await aiosmtplib.send(
            email.as_bytes(),  # flattened by MAIL_POLICY, not aiosmtplib's 78-column default
            sender=parseaddr(sender)[1],
            recipients=recipients,
            hostname=config.hostname,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.use_tls,
            start_tls=False if config.use_tls else None,  # None: STARTTLS when offered
            timeout=timeout_seconds,
        )
    except aiosmtplib.SMTPAuthenticationError as exc:
        # The operator fixes IHM_SMTP_URL; later attempts then go through.
        return Outcome.retry(f"the SMTP server at {config.where} refused the login ({exc.code})")
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = sorted({r.code for r in exc.recipients})
        text = f"the SMTP server refused the recipients ({', '.join(map(str, codes))})"
        return Outcome.give_up(text) if all(c >= 500 for c in codes) else Outcome.retry(text)
    except aiosmtplib.SMTPSenderRefused as exc:
        return Outcome.retry(f"the SMTP server refused the sender IHM_SMTP_SENDER ({exc.code})")
    except aiosmtplib.SMTPDataError as exc:
        text = f"the SMTP server refused the message ({exc.code})"
        return Outcome.give_up(text) if exc.code >= 500 else Outcome.retry(text)
    except aiosmtplib.SMTPTimeoutError:
        return Outcome.retry(f"the SMTP server at {config.where} did not answer in time")
    except aiosmtplib.SMTPResponseException as exc:
        return Outcome.retry(f"the SMTP server at {config.where} answered {exc.code}")
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Outcome.retry(
            f"could not talk to the SMTP server at {config.where} ({type(exc).__name__})"
        )
    return Outcome.delivered()

"""EMAIL delivery to a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import dataclasses
from uuid import UUID

import asyncpg
import pytest

from db.vault import Vault
from tests.workers.delivery.conftest import (
    Clock,
    Mailbox,
    enqueue_one,
    make_channel,
    outbox_rows,
    start_smtp,
)
from workers.delivery.email import (
    IDEMPOTENCY_HEADER,
    NOT_CONFIGURED,
    build_email,
    message_id,
    parse_smtp_url,
)
from workers.delivery.messages import Message
from workers.delivery.outbox import Deliverer, dispatch_due

SENDER = "IHM Alerts <alerts@ihm.example.com>"


def _smtp(deliverer: Deliverer, url: str | None) -> Deliverer:
    return dataclasses.replace(deliverer, smtp_url=url, smtp_sender=SENDER)


async def test_an_email_arrives_with_subject_text_and_html_parts_and_the_idempotency_key(
    pool: asyncpg.Pool,
    vault: Vault,
    org: UUID,
    smtp: Mailbox,
    deliverer: Deliverer,
    clock: Clock,
) -> None:
    # given
    mail = await make_channel(pool, vault, org, "EMAIL", "ops@example.com, cfo@example.com")
    key = await enqueue_one(
        pool,
        org,
        now=clock.at(0),
        title="Xledger rejected the API key",
        body="Check the credentials <b>now</b> & renew them.",
    )
    deliverer = _smtp(deliverer, f"smtp://{smtp.host}:{smtp.port}")

    # when
    stats = await dispatch_due(deliverer, now=clock.at(0))

    # then
    assert stats.delivered == 1
    (envelope,) = smtp.envelopes
    assert envelope.mail_from == "alerts@ihm.example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "cfo@example.com"]
    (email,) = smtp.messages()
    assert email["Subject"] == "[CRITICAL] Xledger rejected the API key"
    assert email["From"] == SENDER
    assert email[IDEMPOTENCY_HEADER] == f"{key}:{mail.id}"
    assert email["Message-ID"] == message_id(f"{key}:{mail.id}", SENDER)
    assert email["Message-ID"].endswith("@ihm.example.com>")
    assert email["Auto-Submitted"] == "auto-generated"
    text = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert text is not None and html is not None
    text_content, html_content = text.get_content(), html.get_content()
    assert "Check the credentials <b>now</b> & renew them." in text_content
    assert f"{key}:{mail.id}" in text_content
    assert "Check the credentials &lt;b&gt;now&lt;/b&gt; &amp; renew them." in html_content
    assert "<b>now</b>" not in html_content
    (row,) = await outbox_rows(pool, org)
    assert row.state == "DELIVERED"


async def test_without_smtp_configured_the_attempt_fails_with_a_clear_error(
    pool: asyncpg.Pool, vault: Vault, org: UUID, deliverer: Deliverer, clock: Clock
) -> None:
    # given
    await make_channel(pool, vault, org, "EMAIL", "ops@example.com")
    await enqueue_one(pool, org, now=clock.at(0))

    # when
    stats = await dispatch_due(_smtp(deliverer, None), now=clock.at(0))

    # then
    assert stats.retried == 1
    (row,) = await outbox_rows(pool, org)
    assert row.last_error == NOT_CONFIGURED == "email is not configured: set IHM_SMTP_URL"


async def test_the_smtp_login_is_used_and_a_refused_one_names_no_password(
    pool: asyncpg.Pool, vault: Vault, org: UUID, deliverer: Deliverer, clock: Clock
) -> None:
    # given: a server requiring a login, and a worker that knows it after a first bad try
    server = await start_smtp(credentials=("monitor", "right p@ss"))
    mailbox = server.mailbox
    base = f"{mailbox.host}:{mailbox.port}"
    await make_channel(pool, vault, org, "EMAIL", "ops@example.com")
    await enqueue_one(pool, org, now=clock.at(0))
    try:
        # when
        refused = await dispatch_due(
            _smtp(deliverer, f"smtp://monitor:LEAK-smtp-pass@{base}"), now=clock.at(0)
        )
        (after_refusal,) = await outbox_rows(pool, org)
        accepted = await dispatch_due(
            _smtp(deliverer, f"smtp://monitor:right%20p%40ss@{base}"), now=clock.at(30)
        )
    finally:
        server.server.close()
        await server.server.wait_closed()

    # then
    assert (refused.retried, accepted.delivered) == (1, 1)
    assert after_refusal.last_error == f"the SMTP server at {base} refused the login (535)"
    # aiosmtplib tries each mechanism the server offers before giving up.
    assert {user for user, _ in mailbox.logins} == {"monitor"}
    assert [ok for _, ok in mailbox.logins][-1] is True
    assert False in [ok for _, ok in mailbox.logins]
    assert len(mailbox.envelopes) == 1


async def test_an_unreachable_smtp_server_is_retried(
    pool: asyncpg.Pool, vault: Vault, org: UUID, deliverer: Deliverer, clock: Clock
) -> None:
    # given: a server that just closed
    server = await start_smtp()
    port = server.mailbox.port
    server.server.close()
    await server.server.wait_closed()
    await make_channel(pool, vault, org, "EMAIL", "ops@example.com")
    await enqueue_one(pool, org, now=clock.at(0))

    # when
    stats = await dispatch_due(_smtp(deliverer, f"smtp://127.0.0.1:{port}"), now=clock.at(0))

    # then
    assert stats.retried == 1
    (row,) = await outbox_rows(pool, org)
    assert row.last_error is not None
    assert row.last_error.startswith(f"could not talk to the SMTP server at 127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("url", "host", "port", "user", "password", "tls"),
    [
        ("smtp://mail.example.com", "mail.example.com", None, None, None, False),
        ("smtp://u:p%40ss@mail.example.com:587", "mail.example.com", 587, "u", "p@ss", False),
        ("smtps://u%40x.com:pw@smtp.example.com", "smtp.example.com", None, "u@x.com", "pw", True),
    ],
)
def test_the_smtp_url_gives_host_port_login_and_tls(
    url: str, host: str, port: int | None, user: str | None, password: str | None, tls: bool
) -> None:
    config = parse_smtp_url(url)

    assert (config.hostname, config.port, config.username) == (host, port, user)
    assert (config.password, config.use_tls) == (password, tls)
    assert "p@ss" not in repr(config) and "pw" not in repr(config).replace("password", "")


@pytest.mark.parametrize("url", ["smtp://", "http://mail.example.com", "smtp://h:notaport"])
def test_an_unusable_smtp_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ValueError, match="IHM_SMTP_URL") as raised:
        parse_smtp_url(url)

    assert url not in str(raised.value)


def test_a_title_with_line_breaks_cannot_inject_headers() -> None:
    message = Message(
        {
            "idempotencyKey": "k",
            "severity": "WARNING",
            "title": "Slack\r\nBcc: victim@example.com",
            "body": "b",
            "text": "t",
        }
    )

    email = build_email(message, sender=SENDER, recipients=["ops@example.com"])

    assert email["Subject"] == "[WARNING] Slack Bcc: victim@example.com"
    assert email["Bcc"] is None

"""Keep channel secrets out of third-party log lines.

Webhook and Apprise URLs carry tokens (Slack's `/services/T…/B…/…`, `tgram://bot:token`),
and three libraries on the delivery path log URLs: httpx logs every request's full URL at
INFO, urllib3 (under Apprise's requests) logs paths and query strings at DEBUG, and Apprise
logs whole service URLs, even at ERROR for one it cannot parse. Log filters are per
logger, not per call, so these apply to the whole worker process: httpx lines keep the
URL masked like a channel target, and Apprise's own lines are dropped (the outcome is
recorded as the attempt's last_error instead).
"""

from __future__ import annotations

import logging

from db.channels import mask_target

_installed = False


class _MaskHttpxUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 2:
            args = list(record.args)
            args[1] = mask_target("WEBHOOK", str(args[1]))
            record.args = tuple(args)
        return True


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


class _DropDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def install_log_guards() -> None:
    """Idempotent; called by the worker's start-up and before the first delivery."""
    global _installed
    if _installed:
        return
    logging.getLogger("httpx").addFilter(_MaskHttpxUrls())
    logging.getLogger("apprise").addFilter(_DropAll())
    logging.getLogger("urllib3.connectionpool").addFilter(_DropDebug())
    _installed = True

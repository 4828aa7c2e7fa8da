"""Provider adapters, one module each, and the registry the runner uses.

Adding a provider: one new module here, a line in ADAPTERS, a config class in
config.py, and a row in the `integration_types` migration.
"""

from __future__ import annotations

from workers.checks.base import Adapter
from workers.checks.dynamics365 import Dynamics365Check
from workers.checks.gmail import GmailCheck
from workers.checks.google_calendar import GoogleCalendarCheck
from workers.checks.http import HttpCheck
from workers.checks.slack import SlackCheck
from workers.checks.xledger import XledgerCheck

ADAPTERS: dict[str, type[Adapter]] = {  # type: ignore[type-arg]
    "http": HttpCheck,
    "slack": SlackCheck,
    "gmail": GmailCheck,
    "google_calendar": GoogleCalendarCheck,
    "xledger": XledgerCheck,
    "dynamics365": Dynamics365Check,
}

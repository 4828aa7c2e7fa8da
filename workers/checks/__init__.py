"""Provider adapters, one module each, and the registry the runner uses.

Adding a provider: one new module here, a line in ADAPTERS, a config class in
config.py, and a row in the `integration_types` migration.
"""

from __future__ import annotations

from workers.checks.base import Adapter
from workers.checks.http import HttpCheck
from workers.checks.slack import SlackCheck

ADAPTERS: dict[str, type[Adapter]] = {  # type: ignore[type-arg]
    "http": HttpCheck,
    "slack": SlackCheck,
}

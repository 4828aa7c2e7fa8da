from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.workers.checks.fakes import Harness


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.http.aclose()

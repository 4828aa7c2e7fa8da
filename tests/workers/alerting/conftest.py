from __future__ import annotations

import pytest

from db.vault import Vault


@pytest.fixture
def vault() -> Vault:
    return Vault([("k1", b"k" * 32)])

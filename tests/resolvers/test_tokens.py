from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import jwt
import pytest

from resolvers.tokens import mint_token

ROOT = Path(__file__).resolve().parents[2]
SECRET = "z" * 40


def test_ihm_token_prints_a_token_with_the_design_claims() -> None:
    org = uuid4()
    env = {**os.environ, "IHM_JWT_SECRET": SECRET}

    done = subprocess.run(
        [sys.executable, "-m", "ihm", "token", "--role", "coordinator", "--org", str(org)]
        + ["--sub", "alice", "--ttl", "600"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    claims = jwt.decode(done.stdout.strip(), SECRET, algorithms=["HS256"], audience="ihm")
    assert (claims["sub"], claims["role"], claims["org_id"]) == ("alice", "coordinator", str(org))
    assert claims["exp"] - claims["iat"] == 600


def test_global_admin_tokens_carry_the_admin_audience() -> None:
    token = mint_token(
        SECRET, role="global_admin", org_id=None, sub="root", ttl_seconds=60, audience="ihm-admin"
    )

    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="ihm-admin")
    assert "org_id" not in claims


@pytest.mark.parametrize(
    ("role", "org", "ttl", "complaint"),
    [
        ("member", None, 60, "needs an org id"),
        ("root", uuid4(), 60, "role must be one of"),
        ("member", uuid4(), 0, "ttl must be positive"),
    ],
)
def test_bad_token_requests_are_refused(role: str, org: object, ttl: int, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        mint_token(SECRET, role=role, org_id=org, sub="x", ttl_seconds=ttl, audience="ihm")  # type: ignore[arg-type]

"""The container deployment (docker-compose.yml, Dockerfile) matches DESIGN.md.

No Docker engine is needed: the files are read as data. The expected names are
written out here (not parsed from DESIGN.md) so the tests run on a clean clone.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

import settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

SERVICES = ("postgres", "redis", "migrate", "api", "worker")
APP_SERVICES = ("api", "worker")

# DESIGN.md, "Environment": every variable the API and the worker read.
DESIGN_ENVIRONMENT = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "IHM_JWT_SECRET",
        "IHM_JWT_AUDIENCE",
        "IHM_ADMIN_AUDIENCE",
        "IHM_JWKS_URL",
        "IHM_JWT_ISSUER",
        "IHM_VAULT_KEYS",
        "IHM_CHECK_TIMEOUT_SECONDS",
        "IHM_ENV",
        "IHM_SCHEDULER_TICK_SECONDS",
        "IHM_MANUAL_CHECK_COOLDOWN_SECONDS",
        "IHM_MANUAL_CHECKS_PER_MINUTE",
    }
)

# pyproject.toml: [tool.setuptools] py-modules and packages.find.
TOP_LEVEL_MODULES = ("ihm.py", "settings.py", "embedded.py")
TOP_LEVEL_PACKAGES = ("schema", "resolvers", "workers", "db")

ROOT_USERS = {"root", "0"}


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "docker-compose.yml is not a mapping"
    return loaded


def service(name: str) -> dict[str, Any]:
    services = compose().get("services") or {}
    assert name in services, f"docker-compose.yml has no service {name!r}"
    definition = services[name]
    assert isinstance(definition, dict)
    return definition


def command_words(name: str) -> list[str]:
    """A service's command as a list of words, whichever form the file uses."""
    command = service(name).get("command")
    if isinstance(command, str):
        return command.split()
    assert isinstance(command, list), f"{name} has no command"
    return [str(word) for word in command]


def environment_names(name: str) -> set[str]:
    """Variable names a service sets, in either the mapping or the list form."""
    environment = service(name).get("environment") or {}
    if isinstance(environment, dict):
        return {str(key) for key in environment}
    return {str(entry).split("=", 1)[0] for entry in environment}


def depends_on(name: str) -> dict[str, str]:
    """Dependency -> condition; the short (list) form means service_started."""
    dependencies = service(name).get("depends_on") or {}
    if isinstance(dependencies, list):
        return {str(dep): "service_started" for dep in dependencies}
    return {
        str(dep): str((spec or {}).get("condition", "service_started"))
        for dep, spec in dependencies.items()
    }


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuations joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    instructions: list[tuple[str, str]] = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, arguments = stripped.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_compose_file_declares_the_documented_services() -> None:
    services = compose().get("services") or {}
    missing = [name for name in SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks services: {missing}"


def test_postgres_runs_version_15_and_redis_version_7() -> None:
    assert str(service("postgres")["image"]).startswith("postgres:15")
    assert str(service("redis")["image"]).startswith("redis:7")


def test_postgres_keeps_its_data_in_a_named_volume() -> None:
    named_volumes = set(compose().get("volumes") or {})
    sources = {str(v).split(":", 1)[0] for v in service("postgres").get("volumes") or []}
    assert sources & named_volumes, "postgres data is not on a named volume"


def test_postgres_redis_and_api_declare_healthchecks() -> None:
    for name in ("postgres", "redis", "api"):
        healthcheck = service(name).get("healthcheck") or {}
        assert healthcheck.get("test"), f"{name} has no healthcheck test"
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"


def test_api_healthcheck_asks_readyz_without_curl() -> None:
    test = service("api")["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(str(word) for word in test)
    assert "/readyz" in text
    assert "curl" not in text, "python:3.11-slim has no curl"


def test_migrate_api_and_worker_run_the_documented_ihm_commands() -> None:
    assert command_words("migrate") == ["ihm", "migrate"]
    assert command_words("api")[:2] == ["ihm", "api"]
    assert command_words("worker") == ["ihm", "worker"]


def test_api_listens_on_all_interfaces_and_publishes_port_8000() -> None:
    words = command_words("api")
    # Inside a container, loopback is unreachable from the published port.
    assert words[words.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    assert words[words.index("--port") + 1] == "8000"
    assert "8000:8000" in [str(port) for port in service("api").get("ports") or []]


def test_migrate_is_a_one_shot_that_waits_for_a_healthy_postgres() -> None:
    assert service("migrate").get("restart", "no") == "no"
    assert depends_on("migrate").get("postgres") == "service_healthy"


def test_api_and_worker_set_every_documented_environment_variable() -> None:
    for name in APP_SERVICES:
        missing = sorted(DESIGN_ENVIRONMENT - environment_names(name))
        assert not missing, f"{name} lacks environment variables: {missing}"


def test_api_and_worker_set_only_variables_the_settings_module_reads() -> None:
    aliases = {field.alias for field in settings.Settings.model_fields.values()}
    for name in APP_SERVICES:
        unknown = sorted(environment_names(name) - aliases)
        assert not unknown, f"{name} sets variables settings.py ignores: {unknown}"


def test_secrets_are_required_from_the_host_not_written_in_the_file() -> None:
    for name in APP_SERVICES:
        environment = service(name)["environment"]
        assert isinstance(environment, dict)
        for variable in ("IHM_JWT_SECRET", "IHM_VAULT_KEYS"):
            value = str(environment[variable])
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]*\}}", value), (
                f"{name}.{variable} should be ${{{variable}:?...}}, got {value!r}"
            )


def test_api_and_worker_wait_for_migrate_to_complete_successfully() -> None:
    for name in APP_SERVICES:
        dependencies = depends_on(name)
        assert dependencies.get("migrate") == "service_completed_successfully", name
        assert dependencies.get("postgres") == "service_healthy", name
        assert dependencies.get("redis") == "service_healthy", name


def test_dockerfile_exists_and_does_not_run_as_root() -> None:
    assert DOCKERFILE.is_file(), "Dockerfile is missing"
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    assert users, "Dockerfile has no USER instruction, so it runs as root"
    final_user = users[-1].split(":", 1)[0]
    assert final_user not in ROOT_USERS, f"Dockerfile ends as {users[-1]!r}"


def test_dockerfile_copies_every_top_level_module_and_package() -> None:
    copied = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "COPY")
    words = {word.rstrip("/") for word in copied.split()}
    missing = [
        name
        for name in (*TOP_LEVEL_MODULES, *TOP_LEVEL_PACKAGES, "pyproject.toml")
        if name not in words
    ]
    assert not missing, f"Dockerfile does not COPY: {missing}"

"""docker-compose.yml parses, and every hexcast service runs a real command with real settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.main import get_command

from hexcast.cli import app
from hexcast.core.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def test_infrastructure_services_have_health_checks() -> None:
    services = _services()
    assert services["kafka"]["image"].startswith("apache/kafka")
    for name in ("kafka", "postgres", "redis"):
        assert "healthcheck" in services[name], name


def test_hexcast_services_run_registered_commands() -> None:
    cli = get_command(app)
    known = set(cli.commands)  # type: ignore[attr-defined]
    hexcast = {n: s for n, s in _services().items() if "command" in s and "build" in s}
    assert {"api", "matcher", "provider-sim", "sender-geo"} <= set(hexcast)
    for name, service in hexcast.items():
        assert service["command"][0] in known, name


def test_environment_names_are_settings() -> None:
    fields = {f"HEXCAST_{name.upper()}" for name in Settings.model_fields}
    for name, service in _services().items():
        env = service.get("environment") or {}
        for var in env:
            if var.startswith("HEXCAST_"):
                assert var in fields, (name, var)

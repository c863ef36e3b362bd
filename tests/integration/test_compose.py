"""docker-compose.yml as Docker Compose reads it: ``docker-compose config -q`` (Debian's 1.29,
from ``make deps``; no daemon needed) validates it, and the configuration it resolves (anchors,
merges and ``${VAR:-default}`` substituted) is durable (tests/unit/test_compose.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.unit.test_compose import COMPOSE, assert_durable

BINARY = shutil.which("docker-compose") or "/usr/bin/docker-compose"


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BINARY, "-f", str(COMPOSE), "config", *args], cwd=Path(COMPOSE).parent,
                          capture_output=True, text=True, timeout=60)


def test_docker_compose_validates_the_file() -> None:
    done = _compose("-q")
    assert done.returncode == 0, done.stderr


def test_the_resolved_configuration_is_durable() -> None:
    done = _compose()
    assert done.returncode == 0, done.stderr
    assert_durable(yaml.safe_load(done.stdout))

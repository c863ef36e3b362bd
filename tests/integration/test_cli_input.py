"""Operator CLI input: a bad argument is an error line and exit code 2, and nothing is made."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import asyncpg
import pytest

from hexcast.testing import create_database, drop_database, dsn


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    name = asyncio.run(create_database())
    try:
        yield {**os.environ, "HEXCAST_DATABASE_URL": dsn(name), "HEXCAST_LOG_LEVEL": "warning",
               "NO_COLOR": "1", "COLUMNS": "200"}
    finally:
        asyncio.run(drop_database(name))


def _hexcast(env: dict[str, str], *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hexcast", *args], env=env, input=answer,
                          capture_output=True, text=True, timeout=60, check=False)


async def _tenant_names(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r["name"] for r in await conn.fetch("SELECT name FROM tenants ORDER BY id")]
    finally:
        await conn.close()


@pytest.mark.parametrize(("name", "says"), [
    ("", "at least 1 character"),
    ("   ", "at least 1 character"),
    ("a\tb", "should match pattern"),
    ("x" * 201, "at most 200 characters"),
    ("Acme \udcff", "cannot be stored"),  # a byte that is not UTF-8 in argv
])
def test_a_bad_tenant_name_is_refused(env: dict[str, str], name: str, says: str) -> None:
    done = _hexcast(env, "tenant", "create", name)
    assert done.returncode == 2, done.stdout
    assert "error: tenant name" in done.stderr
    assert says in done.stderr
    assert asyncio.run(_tenant_names(env["HEXCAST_DATABASE_URL"])) == []


def test_a_tenant_name_is_stripped_and_unique(env: dict[str, str]) -> None:
    made = _hexcast(env, "tenant", "create", "  Acme Stores ", "--yes")
    assert made.returncode == 0, made.stderr
    assert "api key: hx_" in made.stdout
    again = _hexcast(env, "tenant", "create", "Acme Stores", "--yes")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert asyncio.run(_tenant_names(env["HEXCAST_DATABASE_URL"])) == ["Acme Stores"]


def test_creating_a_tenant_asks_first(env: dict[str, str]) -> None:
    """Without ``--yes`` the CLI asks; a no creates nothing (exit 1), a yes creates."""
    declined = _hexcast(env, "tenant", "create", "Acme Stores", "--reason", "new brand", answer="n\n")
    assert declined.returncode == 1
    assert "create tenant 'Acme Stores' and its first admin API key (new brand)?" in declined.stdout
    assert "api key" not in declined.stdout
    assert asyncio.run(_tenant_names(env["HEXCAST_DATABASE_URL"])) == []
    accepted = _hexcast(env, "tenant", "create", "Acme Stores", "--reason", "new brand", answer="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "api key: hx_" in accepted.stdout
    assert asyncio.run(_tenant_names(env["HEXCAST_DATABASE_URL"])) == ["Acme Stores"]


@pytest.mark.parametrize(("reason", "says"), [
    ("   ", "at least 1 character"),
    ("x" * 501, "at most 500 characters"),
    ("why \udcff", "cannot be stored"),  # a byte that is not UTF-8 in argv
])
def test_a_bad_reason_for_a_new_tenant_is_refused(env: dict[str, str], reason: str, says: str) -> None:
    done = _hexcast(env, "tenant", "create", "Acme Stores", "--reason", reason, "--yes")
    assert done.returncode == 2, done.stdout
    assert "error: --reason" in done.stderr
    assert says in done.stderr
    assert asyncio.run(_tenant_names(env["HEXCAST_DATABASE_URL"])) == []


@pytest.mark.parametrize("campaign_id", ["0", str(2**63), "abc"])
def test_a_campaign_id_out_of_range_is_a_usage_error(env: dict[str, str], campaign_id: str) -> None:
    done = _hexcast(env, "campaign", "run-now", campaign_id)
    assert done.returncode == 2
    assert "campaign_id" in done.stderr
    assert "DataError" not in done.stderr

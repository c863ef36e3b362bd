"""Operators create tenants through the api (not only the CLI) and every operator action lands
in one audit log: real api process, PostgreSQL and Redis.

A tenant made with the operator token gets a working admin key (shown once); a taken name is
a 409, bad names a 422; no token, no tenant. ``GET /v1/admin/audit`` lists the creation (who,
why, on what), a provider route drained and enabled through the admin API, and a tenant made
by ``hexcast tenant create --reason``, newest first, filtered by action."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hexcast.testing import OPERATOR_TOKEN
from tests.integration.apiproc import RunningApi, running_api

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture(scope="module")
def api(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[RunningApi]:
    with running_api(broker_url, database_url, tmp_path_factory.mktemp("admin")) as running:
        yield running


def _open(api: RunningApi, name: str, **extra: Any) -> httpx.Response:
    return httpx.post(f"{api.url}/v1/admin/tenants", headers=OPERATOR, timeout=30,
                      json={"name": name, "reason": "new brand signed", **extra})


def _audit(api: RunningApi, action: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": 500} | ({"action": action} if action else {})
    answer = httpx.get(f"{api.url}/v1/admin/audit", params=params, headers=OPERATOR, timeout=30)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_an_operator_creates_a_tenant_whose_first_key_is_admin(api: RunningApi) -> None:
    name = f"Corner Store {uuid.uuid4().hex[:8]}"
    made = _open(api, name, actor="ops:ana")
    assert made.status_code == 201, made.text
    tenant = made.json()
    assert tenant["name"] == name
    keys = httpx.get(f"{api.url}/v1/keys", headers={"X-API-Key": tenant["api_key"]}, timeout=30)
    assert keys.status_code == 200, keys.text
    assert [k["scope"] for k in keys.json()] == ["admin"]
    assert _open(api, name).status_code == 409
    [entry] = [e for e in _audit(api, "tenant.") if e["target"] == f"tenant:{tenant['id']}"]
    assert (entry["actor"], entry["action"], entry["reason"], entry["detail"]) == (
        "ops:ana", "tenant.create", "new brand signed", {"name": name})


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "", "reason": "x"}, "name"),
    ({"name": "A\x00B", "reason": "x"}, "name"),
    ({"name": "ok", "reason": ""}, "reason"),
    ({"name": "ok"}, "reason"),
    ({"name": "ok", "reason": "x", "scope": "admin"}, "scope"),
])
def test_bad_tenants_are_422_naming_the_field(api: RunningApi, body: dict[str, Any], field: str) -> None:
    answer = httpx.post(f"{api.url}/v1/admin/tenants", headers=OPERATOR, json=body, timeout=30)
    assert answer.status_code == 422, answer.text
    assert field in answer.text


def test_without_the_operator_token_no_tenant_is_made(api: RunningApi) -> None:
    name = f"Sneaky {uuid.uuid4().hex[:8]}"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": api.key}):
        answer = httpx.post(f"{api.url}/v1/admin/tenants", headers=headers, timeout=30,
                            json={"name": name, "reason": "x"})
        assert answer.status_code == 401, answer.text
    assert not [e for e in _audit(api, "tenant.create") if e["detail"].get("name") == name]


def test_route_actions_and_cli_tenants_are_in_the_same_log(api: RunningApi) -> None:
    for action in ("drain", "enable"):
        acted = httpx.post(f"{api.url}/v1/admin/providers/sim/actions", headers=OPERATOR, timeout=30,
                           json={"action": action, "reason": f"carrier {action}", "actor": "ops:bo"})
        assert acted.status_code == 200, acted.text
    routes = [(e["action"], e["target"], e["actor"]) for e in _audit(api, "route.")[:2]]
    assert routes == [("route.enable", "route:sim", "ops:bo"), ("route.drain", "route:sim", "ops:bo")]

    name = f"From CLI {uuid.uuid4().hex[:8]}"
    done = subprocess.run([sys.executable, "-m", "hexcast", "tenant", "create", name,
                           "--reason", "migrated brand"], capture_output=True, text=True,
                          env=api.settings.to_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    entries = _audit(api)
    assert [e["detail"].get("name") for e in entries][:1] == [name]  # newest first
    assert entries[0]["actor"].startswith("cli:")
    assert entries[0]["reason"] == "migrated brand"
    assert {e["action"] for e in entries} >= {"tenant.create", "route.drain", "route.enable"}

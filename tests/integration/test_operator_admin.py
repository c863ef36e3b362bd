"""Operators create tenants and pause, resume or cancel any tenant's campaign through the api
and the CLI, and every operator action lands in one audit log: real api process, PostgreSQL
and Redis.

A tenant made with the operator token gets a working admin key (shown once); a taken name is
a 409, bad names a 422; no token, no tenant. ``GET /v1/admin/audit`` lists the creation (who,
why, on what), a provider route drained and enabled through the admin API, and a tenant made
by ``hexcast tenant create --reason``, newest first, filtered by action. Campaign actions
follow the marketer's rules (409 from a wrong state, 404 for none), the tenant sees their
effect, and ``hexcast campaign pause`` asks first unless ``--yes``."""

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
                           "--reason", "migrated brand", "--yes"], capture_output=True, text=True,
                          env=api.settings.to_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    entries = _audit(api)
    assert [e["detail"].get("name") for e in entries][:1] == [name]  # newest first
    assert entries[0]["actor"].startswith("cli:")
    assert entries[0]["reason"] == "migrated brand"
    assert {e["action"] for e in entries} >= {"tenant.create", "route.drain", "route.enable"}


def _campaign(api: RunningApi) -> int:
    made = httpx.post(f"{api.url}/v1/campaigns", headers={"X-API-Key": api.key}, timeout=30, json={
        "name": f"Winter sale {uuid.uuid4().hex[:6]}", "body": "Coats 30% off tonight",
        "segment": {"everyone": True}, "run_at": "2031-11-28T18:00:00",
        "time_zone": "America/Chicago"})
    assert made.status_code == 201, made.text
    campaign_id: int = made.json()["id"]
    return campaign_id


def _act(api: RunningApi, campaign_id: int, action: str) -> httpx.Response:
    return httpx.post(f"{api.url}/v1/admin/campaigns/{campaign_id}/actions", headers=OPERATOR,
                      timeout=30, json={"action": action, "reason": f"ops {action}", "actor": "ops:cy"})


def test_an_operator_pauses_resumes_and_cancels_any_tenants_campaign(api: RunningApi) -> None:
    campaign_id = _campaign(api)
    states = [_act(api, campaign_id, a).json()["state"] for a in ("pause", "resume", "cancel")]
    assert states == ["paused", "active", "cancelled"]
    again = _act(api, campaign_id, "cancel")
    assert again.status_code == 409, again.text
    assert _act(api, 2**62, "pause").status_code == 404
    assert _act(api, campaign_id, "explode").status_code == 422
    mine = [e for e in _audit(api, "campaign.") if e["target"] == f"campaign:{campaign_id}"]
    assert [(e["action"], e["actor"], e["reason"]) for e in mine] == [
        ("campaign.cancel", "ops:cy", "ops cancel"), ("campaign.resume", "ops:cy", "ops resume"),
        ("campaign.pause", "ops:cy", "ops pause")]
    assert mine[0]["detail"]["tenant_id"] == api.tenant_id
    assert mine[0]["detail"]["was"] == "active"
    seen = httpx.get(f"{api.url}/v1/campaigns/{campaign_id}", headers={"X-API-Key": api.key}, timeout=30)
    assert seen.json()["state"] == "cancelled"  # the tenant sees what the operator did


def test_the_cli_asks_before_it_acts_and_audits(api: RunningApi) -> None:
    campaign_id = _campaign(api)

    def cli(*args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hexcast", "campaign", *args], input=answer,
                              capture_output=True, text=True, timeout=60,
                              env={**api.settings.to_env(), "NO_COLOR": "1"})

    declined = cli("pause", str(campaign_id), "--reason", "carrier outage", answer="n\n")
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert cli("pause", str(campaign_id), "--reason", "").returncode == 2
    done = cli("pause", str(campaign_id), "--reason", "carrier outage", answer="y\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"campaign {campaign_id}: paused")
    assert cli("pause", str(campaign_id), "--reason", "again", "--yes").returncode == 1  # 409
    [entry] = [e for e in _audit(api, "campaign.pause") if e["target"] == f"campaign:{campaign_id}"]
    assert entry["actor"].startswith("cli:")
    assert entry["reason"] == "carrier outage"

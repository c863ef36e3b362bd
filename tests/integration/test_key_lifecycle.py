"""API keys through the api (create, list, rotate, revoke) on two api processes, and the
tenant settings that may only be stricter than the law and the defaults."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from hexcast.testing import make_tenant
from tests.integration.apiproc import RunningApi, running_api


@pytest.fixture(scope="module")
def two_apis(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[RunningApi, RunningApi]]:
    """Two api processes on one database (each made its own tenant; tests use the first's)."""
    with running_api(broker_url, database_url, tmp_path_factory.mktemp("api1")) as one, \
            running_api(broker_url, database_url, tmp_path_factory.mktemp("api2")) as two:
        yield one, two


def _client(api: RunningApi, key: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=30)


def test_a_revoked_key_is_refused_at_once_by_every_api_process(two_apis: tuple[RunningApi, RunningApi]
                                                               ) -> None:
    one, two = two_apis
    with _client(one, one.key) as admin:
        made = admin.post("/v1/keys", json={"name": "mobile app", "scope": "ingest"})
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        answers = [httpx.post(f"{api.url}/v1/visits", json={}, headers={"X-API-Key": key})
                   for api in (one, two)]
        assert [a.status_code for a in answers] == [422, 422]  # authenticated, body refused
        assert admin.delete(f"/v1/keys/{made.json()['id']}").json()["revoked_at"] is not None
    # The next request on either process is refused: every request reads the key's row.
    answers = [httpx.post(f"{api.url}/v1/visits", json={}, headers={"X-API-Key": key})
               for api in (one, two)]
    assert [a.status_code for a in answers] == [401, 401]


def test_keys_are_listed_without_secrets_and_rotated(two_apis: tuple[RunningApi, RunningApi]) -> None:
    one, two = two_apis
    with _client(one, one.key) as admin:
        made = admin.post("/v1/keys", json={"name": "backend", "scope": "send"}).json()
        assert made["key"].startswith(f"hx_{made['prefix']}_")
        with _client(two, made["key"]) as sender:
            assert sender.get(f"/v1/messages/{made['prefix']}").status_code == 404
            assert sender.get("/v1/keys").status_code == 403  # keys need admin
        listed = admin.get("/v1/keys").json()
        assert made["key"] not in str(listed)
        assert "key_hash" not in str(listed)
        mine = next(k for k in listed if k["id"] == made["id"])
        assert (mine["name"], mine["scope"], mine["revoked_at"]) == ("backend", "send", None)
        assert mine["last_used_at"] is not None  # used just now, through the other process
        rotated = admin.post(f"/v1/keys/{made['id']}/rotate")
        assert rotated.status_code == 201, rotated.text
        new = rotated.json()
        assert (new["name"], new["scope"], new["rotated_from"]) == ("backend", "send", made["id"])
        assert admin.post(f"/v1/keys/{made['id']}/rotate").status_code == 409  # revoked already
    for api in (one, two):
        assert _client(api, made["key"]).get(f"/v1/messages/{made['prefix']}").status_code == 401
        assert _client(api, new["key"]).get(f"/v1/messages/{made['prefix']}").status_code == 404


def test_the_last_admin_key_cannot_be_revoked(two_apis: tuple[RunningApi, RunningApi], database_url: str
                                              ) -> None:
    _, two = two_apis
    tenant = asyncio.run(make_tenant(database_url, prefix="last-admin"))  # its only key: admin
    with _client(two, tenant.api_key) as admin:
        first = next(k for k in admin.get("/v1/keys").json() if k["scope"] == "admin")
        refused = admin.delete(f"/v1/keys/{first['id']}")
        assert refused.status_code == 409
        assert "last admin key" in refused.text
        spare = admin.post("/v1/keys", json={"name": "second admin", "scope": "admin"}).json()
        assert admin.delete(f"/v1/keys/{first['id']}").status_code == 200
    with _client(two, spare["key"]) as admin:
        assert admin.get("/v1/keys").status_code == 200
        assert admin.delete(f"/v1/keys/{spare['id']}").status_code == 409
        rotated = admin.post(f"/v1/keys/{spare['id']}/rotate")  # rotation keeps an admin key
        assert rotated.status_code == 201, rotated.text
    assert _client(two, spare["key"]).get("/v1/keys").status_code == 401
    assert _client(two, rotated.json()["key"]).get("/v1/keys").status_code == 200


def test_another_tenants_key_is_not_found(two_apis: tuple[RunningApi, RunningApi]) -> None:
    one, two = two_apis
    with _client(one, one.key) as first, _client(two, two.key) as second:
        theirs = second.post("/v1/keys", json={"name": "theirs", "scope": "ingest"}).json()
        assert first.delete(f"/v1/keys/{theirs['id']}").status_code == 404
        assert first.post(f"/v1/keys/{theirs['id']}/rotate").status_code == 404


def test_settings_may_only_be_stricter(two_apis: tuple[RunningApi, RunningApi]) -> None:
    one, _ = two_apis
    with _client(one, one.key) as admin:
        before = admin.get("/v1/tenant/settings").json()
        assert before["send_window"] is None
        assert before["legal_window"] == {"start": "08:00:00", "end": "21:00:00"}
        narrower = {"send_window": {"start": "09:30", "end": "19:00"}, "cap_per_day": 1,
                    "max_segments": 3, "help_text": "Acme offers. Reply STOP to opt out."}
        changed = admin.patch("/v1/tenant/settings", json=narrower)
        assert changed.status_code == 200, changed.text
        assert changed.json()["send_window"] == {"start": "09:30:00", "end": "19:00:00"}
        assert (changed.json()["cap_per_day"], changed.json()["max_segments"]) == (1, 3)
        for body, field in (({"send_window": {"start": "07:00", "end": "19:00"}}, "send_window.start"),
                            ({"send_window": {"start": "09:00", "end": "22:00"}}, "send_window.end"),
                            ({"cap_per_24h": before["default_caps"]["per_24h"] + 1}, "cap_per_24h")):
            refused = admin.patch("/v1/tenant/settings", json=body)
            assert refused.status_code == 422, refused.text
            assert refused.json()["field"] == field
        assert "08:00-21:00" in admin.patch("/v1/tenant/settings", json={
            "send_window": {"start": "06:00", "end": "20:00"}}).json()["message"]
        assert admin.patch("/v1/tenant/settings", json={"max_segments": 11}).status_code == 422
        assert admin.patch("/v1/tenant/settings", json={"help_text": None}).status_code == 422
        after = admin.get("/v1/tenant/settings").json()
        assert after == changed.json()  # nothing refused was stored
        cleared = admin.patch("/v1/tenant/settings", json={"send_window": None, "cap_per_day": None})
        assert (cleared.json()["send_window"], cleared.json()["cap_per_day"]) == (None, None)
        assert cleared.json()["max_segments"] == 3


def test_a_tenants_own_sender_ids_are_checked_and_kept(two_apis: tuple[RunningApi, RunningApi]) -> None:
    one, _ = two_apis
    with _client(one, one.key) as admin:
        kept = admin.patch("/v1/tenant/settings", json={"sender_ids": ["+13125550001", "ACMEShop"]})
        assert (kept.status_code, kept.json()["sender_ids"]) == (200, ["+13125550001", "ACMEShop"])
        for bad in (["not a number!"], ["TwelveLetters"], [], ["+1"] * 11):
            refused = admin.patch("/v1/tenant/settings", json={"sender_ids": bad})
            assert refused.status_code == 422, (bad, refused.text)
        cleared = admin.patch("/v1/tenant/settings", json={"sender_ids": None})
        assert cleared.json()["sender_ids"] is None  # back to the routes' own

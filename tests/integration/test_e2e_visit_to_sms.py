"""A visit becomes a delivered SMS through the real broker, PostgreSQL, Redis and processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hexcast.testing import Stack, eventually, make_settings, make_tenant, running_stack, wait_matcher_knows

pytestmark = pytest.mark.e2e

STORE_A = (41.8827, -87.6233)  # Millennium Park area, Chicago
STORE_B = (42.0451, -87.6877)  # Evanston, ~19 km north
FIVE_KM_AWAY = (41.8827 + 0.045, -87.6233)
NOWHERE = (41.8827, -87.0)  # Lake Michigan: no store near


@pytest.fixture(scope="module")
def stack(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = make_settings(broker_url, database_url)
    with running_stack(settings, tmp_path_factory.mktemp("logs")) as running:
        yield running


@pytest.fixture(scope="module")
def world(stack: Stack, database_url: str) -> dict[str, Any]:
    """Two tenants; tenant A has stores A and B, a promotion each, and four recipients."""
    tag = uuid.uuid4().hex[:6]
    brand_a = asyncio.run(make_tenant(database_url, name=f"brand-a-{tag}"))
    tenant_a, key_a = brand_a.id, brand_a.api_key
    key_b = asyncio.run(make_tenant(database_url, name=f"brand-b-{tag}")).api_key
    api = httpx.Client(base_url=stack.api_url, headers={"X-API-Key": key_a}, timeout=10)
    store_a = _post(api, "/v1/stores", name="State St", lat=STORE_A[0], lng=STORE_A[1],
                    time_zone="America/Chicago", geofence={"type": "circle", "radius_m": 150})
    store_b = _post(api, "/v1/stores", name="Evanston", lat=STORE_B[0], lng=STORE_B[1],
                    time_zone="America/Chicago", geofence={"type": "circle", "radius_m": 150})
    promo_a = _post(api, "/v1/promotions", store_id=store_a["id"], name="Phones",
                    body="20% off phones at State St today", interests=["electronics"])
    promo_b = _post(api, "/v1/promotions", store_id=store_b["id"], name="Everyone",
                    body="Free coffee in Evanston", interests=[])
    consent = {"at": "2026-01-01T00:00:00Z", "source": "app", "text": "Offers by SMS"}
    users = {"fan": ["electronics/phones"], "gardener": ["garden"], "far": ["electronics"],
             "scoped": ["books"]}
    phones = {}
    for n, (user, interests) in enumerate(users.items()):
        phone = f"+1312200{n:04d}"
        _post(api, "/v1/recipients", user_id=f"{user}-{tag}", phone=phone,
              interests=interests, consent=consent, time_zone="America/Chicago")
        phones[user] = phone
    nowhere = iter(range(1000))
    for user in users:
        wait_matcher_knows(stack, tenant_a, lambda u=f"{user}-{tag}": _visit(
            api, u, NOWHERE, f"ev-nowhere-{next(nowhere)}"))
    return {"api": api, "key_b": key_b, "tag": tag, "store_a": store_a, "promo_a": promo_a,
            "promo_b": promo_b, "phones": phones}


def _post(api: httpx.Client, path: str, **body: Any) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _visit(api: httpx.Client, user: str, where: tuple[float, float], event_id: str) -> None:
    event = {"event_id": event_id, "user_id": user, "lat": where[0], "lng": where[1],
             "accuracy_m": 10, "ts": datetime.now(UTC).isoformat()}
    response = api.post("/v1/visits", json=event)
    assert response.status_code == 202, response.text


def _ledger_for(stack: Stack, phone: str) -> list[dict[str, Any]]:
    return [item for item in stack.ledger() if item["to"] == phone]


def test_visit_inside_geofence_is_delivered_once(stack: Stack, world: dict[str, Any]) -> None:
    api, user = world["api"], f"fan-{world['tag']}"
    _visit(api, user, STORE_A, "ev-fan-1")
    sent = eventually(lambda: _ledger_for(stack, world["phones"]["fan"]), timeout=90)
    assert [item["body"] for item in sent] == ["20% off phones at State St today"]

    key = sent[0]["client_ref"]
    history = eventually(lambda: _delivered(api, key), timeout=30)
    states = [e["to_state"] for e in history["events"]]
    assert states == ["queued", "sending", "accepted", "delivered"]
    assert history["provider_message_id"] == sent[0]["provider_message_id"]

    # The same event again, and a second visit the same day: still one SMS.
    _visit(api, user, STORE_A, "ev-fan-1")
    _visit(api, user, STORE_A, "ev-fan-2")
    _visit(api, user, STORE_B, "ev-fan-3")  # sentinel: same partition, processed after
    eventually(lambda: len(_ledger_for(stack, world["phones"]["fan"])) == 2 or None, timeout=60)
    bodies = sorted(i["body"] for i in _ledger_for(stack, world["phones"]["fan"]))
    assert bodies == ["20% off phones at State St today", "Free coffee in Evanston"]


def _delivered(api: httpx.Client, key: str) -> dict[str, Any] | None:
    response = api.get(f"/v1/messages/{key}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body if body["state"] == "delivered" else None


def test_far_visit_and_interest_mismatch_send_nothing(stack: Stack, world: dict[str, Any]) -> None:
    api = world["api"]
    _visit(api, f"far-{world['tag']}", FIVE_KM_AWAY, "ev-far-1")
    _visit(api, f"far-{world['tag']}", STORE_B, "ev-far-2")  # sentinel
    _visit(api, f"gardener-{world['tag']}", STORE_A, "ev-gard-1")
    _visit(api, f"gardener-{world['tag']}", STORE_B, "ev-gard-2")  # sentinel
    for user in ("far", "gardener"):
        sent = eventually(lambda u=user: _ledger_for(stack, world["phones"][u]), timeout=90)
        assert [i["body"] for i in sent] == ["Free coffee in Evanston"], user


def test_api_keys_are_required_and_scoped(stack: Stack, world: dict[str, Any]) -> None:
    store_id = world["store_a"]["id"]
    anonymous = httpx.post(f"{stack.api_url}/v1/visits", json={})
    assert anonymous.status_code == 401
    wrong = httpx.get(f"{stack.api_url}/v1/stores", headers={"X-API-Key": "hx_dead_beef"})
    assert wrong.status_code == 401
    other = httpx.Client(base_url=stack.api_url, headers={"X-API-Key": world["key_b"]})
    assert other.get(f"/v1/stores/{store_id}").status_code == 404
    assert other.get("/v1/stores").json() == []
    response = other.post("/v1/promotions", json={"store_id": store_id, "name": "x", "body": "y"})
    assert response.status_code == 404
    # A real message of tenant A (the promotion for everyone at store B): A reads it, B cannot.
    _visit(world["api"], f"scoped-{world['tag']}", STORE_B, "ev-scoped-1")
    sent = eventually(lambda: _ledger_for(stack, world["phones"]["scoped"]), timeout=90)
    key = sent[0]["client_ref"]
    eventually(lambda: world["api"].get(f"/v1/messages/{key}").status_code == 200 or None, timeout=30)
    assert other.get(f"/v1/messages/{key}").status_code == 404


def test_recipient_updates_reach_the_matcher_and_are_scoped(
    stack: Stack, world: dict[str, Any]
) -> None:
    api, tag = world["api"], world["tag"]
    user = f"switch-{tag}"
    consent = {"at": "2026-01-01T00:00:00Z", "source": "app", "text": "Offers by SMS"}
    _post(api, "/v1/recipients", user_id=user, phone="+13122009001", interests=["garden"],
          consent=consent, time_zone="America/Chicago")
    changed = api.patch(f"/v1/recipients/{user}", json={"interests": ["electronics/tv"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["interests"] == ["electronics/tv"]
    # The profile reaches the matcher through the profiles topic: a later visit matches.
    visits = iter(range(1000))
    sent = eventually(lambda: _visit(api, user, STORE_A, f"ev-switch-{next(visits)}")
                      or _ledger_for(stack, "+13122009001"), timeout=90, every=1.0)
    assert [i["body"] for i in sent] == ["20% off phones at State St today"]

    withdrawn = api.patch(f"/v1/recipients/{user}", json={"consent": None})
    assert withdrawn.json()["consent"] is False
    assert api.get(f"/v1/recipients/{user}").json()["consent"] is False
    taken = api.patch(f"/v1/recipients/{user}", json={"phone": world["phones"]["fan"]})
    assert taken.status_code == 409, taken.text
    for body, field in [({}, "nothing to change"), ({"phone": "+1 555"}, "phone"),
                        ({"phone": None}, "phone"), ({"time_zone": "Mars/Base"}, "time_zone"),
                        ({"interests": ["Bad Tag"]}, "interests"), ({"name": "x"}, "name")]:
        bad = api.patch(f"/v1/recipients/{user}", json=body)
        assert bad.status_code == 422, (body, bad.text)
        assert field in bad.text, (body, bad.text)
    other = httpx.Client(base_url=stack.api_url, headers={"X-API-Key": world["key_b"]})
    assert other.patch(f"/v1/recipients/{user}", json={"consent": None}).status_code == 404
    assert other.delete(f"/v1/recipients/{user}").status_code == 404
    assert api.delete(f"/v1/recipients/{user}").status_code == 204
    assert api.get(f"/v1/recipients/{user}").status_code == 404
    assert api.delete(f"/v1/recipients/{user}").status_code == 404
    again = api.post("/v1/recipients", json={"user_id": user, "phone": "+13122009001"})
    assert again.status_code == 201, again.text  # the phone and user id are free again

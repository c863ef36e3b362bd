"""Bad input gets a clear 4xx naming the problem, and nothing reaches the visits topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hexcast.core.kafka import delete_topics
from hexcast.core.settings import Settings
from hexcast.core.topics import create_topics, topic_specs
from hexcast.devstack.procs import free_port, hexcast_process, wait_http
from hexcast.testing import make_settings, make_tenant
from scheduler.models import MIN_RATE
from tests.integration.apiproc import published

NOW = datetime.now(UTC).isoformat()
GOOD = {"event_id": "e1", "user_id": "u1", "lat": 41.88, "lng": -87.62, "ts": NOW}


@pytest.fixture(scope="module")
def api(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[httpx.Client, Settings]]:
    port = free_port()
    settings = make_settings(broker_url, database_url, api_port=port, max_body_bytes=262_144)
    asyncio.run(create_topics(settings))
    child = hexcast_process("api", ["api"], env=settings.to_env(),
                            log_dir=Path(tmp_path_factory.mktemp("api")))
    child.spawn()
    try:
        wait_http(f"http://127.0.0.1:{port}/health", child=child)
        key = asyncio.run(make_tenant(database_url, prefix="bad-input")).api_key
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}) as client:
            yield client, settings
    finally:
        child.terminate()
        asyncio.run(delete_topics(settings.bootstrap_servers, topic_specs(settings)))


def _event(**over: Any) -> dict[str, Any]:
    return {**GOOD, **over}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_event(lat=95), "lat"),
        (_event(lng=-181), "lng"),
        (_event(accuracy_m=-1), "accuracy_m"),
        (_event(ts="yesterday"), "ts"),
        (_event(extra_field=1), "extra_field"),
        ({k: v for k, v in GOOD.items() if k != "user_id"}, "user_id"),
        ({"events": [_event(event_id=str(i)) for i in range(1001)]}, "events"),
        ({"events": []}, "events"),
        ({"events": [GOOD, _event(event_id="e2", lat="north")]}, "events.1.lat"),
    ],
)
def test_invalid_events_rejected_with_field(
    api: tuple[httpx.Client, Settings], body: dict[str, Any], field: str
) -> None:
    client, settings = api
    response = client.post("/v1/visits", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["message"]
    assert published(settings) == 0


def test_malformed_json_and_oversize_body(api: tuple[httpx.Client, Settings]) -> None:
    client, settings = api
    response = client.post("/v1/visits", content=b'{"event_id": "e1", ',
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "malformed JSON" in response.json()["message"]
    big = client.post("/v1/visits", content=b"x" * 300_000,
                      headers={"content-type": "application/json"})
    assert big.status_code == 413
    assert published(settings) == 0


_DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 kB: under the body limit


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/v1/visits", b'{"event_id": "e1", "user_id": "u", "lat": NaN, "lng": 1, "ts": "%s"}',
     "NaN is not valid JSON"),
    ("/v1/visits", b'{"event_id": "e1", "user_id": "u", "lat": 1e999, "lng": 1, "ts": "%s"}',
     "lat: Input should be a finite number"),
    ("/v1/visits", _DEEP, "nested too deeply"),
    ("/v1/stores", b'{"name": "x", "lat": -1e999, "lng": 1, "time_zone": "UTC",'
                   b' "geofence": {"type": "circle", "radius_m": 50}}', "lat"),
    ("/v1/stores", _DEEP, "error parsing the body"),
])
def test_json_that_python_reads_but_json_has_not_is_a_4xx(
    api: tuple[httpx.Client, Settings], path: str, body: bytes, says: str
) -> None:
    """NaN, numbers beyond a double (read as infinity) and 100,000 nested arrays: a clear
    4xx, where the error answer itself (it echoes the input) or the parser's recursion failed."""
    client, settings = api
    before = published(settings)
    content = body.replace(b"%s", NOW.encode()) if body is not _DEEP else body
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert says in response.json()["message"]
    after = client.post("/v1/stores", json={**_STORE, "geofence": {"type": "circle", "radius_m": 50}})
    assert after.status_code == 201, after.text  # the API goes on
    assert published(settings) == before


_HUGE = 2**63  # one past PostgreSQL's bigint


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("GET", f"/v1/stores/{_HUGE}", None, "path.store_id"),
    ("GET", f"/v1/promotions/{_HUGE}", None, "path.promotion_id"),
    ("GET", f"/v1/campaigns/{_HUGE}/stats", None, "path.campaign_id"),
    ("DELETE", f"/v1/templates/{_HUGE}", None, "path.template_id"),
    ("GET", f"/v1/stores?after_id={_HUGE}", None, "query.after_id"),
    ("POST", "/v1/promotions", {"store_id": _HUGE, "name": "x", "body": "hi"}, "body.store_id"),
    ("POST", f"/v1/webhooks/inbound/{_HUGE}", {"from": "+13125550100", "text": "STOP"},
     "path.tenant_id"),
])
def test_ids_beyond_bigint_are_422_naming_the_field(
    api: tuple[httpx.Client, Settings], method: str, path: str, body: object, field: str
) -> None:
    client, settings = api
    webhook = {"Authorization": f"Bearer {settings.dlr_webhook_token}"}  # checked before the path
    response = client.request(method, path, json=body, headers=webhook)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(f"{field}: ")


def test_framework_refusals_have_our_error_shape(api: tuple[httpx.Client, Settings]) -> None:
    client, _ = api
    missing = client.get("/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.json() == {"error": "NotFound", "message": "Not Found"}
    wrong = client.delete("/v1/visits")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "MethodNotAllowed"
    assert "allow" in wrong.headers


def test_bad_catalog_input(api: tuple[httpx.Client, Settings]) -> None:
    client, _ = api
    bowtie = {"type": "Polygon", "coordinates": [[[-87.62, 41.88], [-87.61, 41.89],
                                                  [-87.61, 41.88], [-87.62, 41.89],
                                                  [-87.62, 41.88]]]}
    store = {"name": "x", "lat": 41.88, "lng": -87.62, "time_zone": "America/Chicago"}
    response = client.post("/v1/stores", json={**store, "geofence": bowtie})
    assert response.status_code == 422
    assert "elf-intersection" in response.json()["message"]
    response = client.post("/v1/stores", json={**store, "time_zone": "Mars/Base",
                                                "geofence": {"type": "circle", "radius_m": 50}})
    assert response.status_code == 422
    assert "time_zone" in response.json()["message"]
    response = client.post("/v1/recipients", json={"user_id": "u", "phone": "12345"})
    assert response.status_code == 422
    assert "phone" in response.json()["message"]


def test_a_good_event_is_published_once(api: tuple[httpx.Client, Settings]) -> None:
    client, settings = api
    before = published(settings)
    response = client.post("/v1/visits", json={"events": [GOOD, _event(event_id="e2", user_id="u2")]})
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "records": 2}
    assert published(settings) == before + 2


_STORE = {"name": "x", "lat": 41.88, "lng": -87.62, "time_zone": "America/Chicago"}
_SQUARE = [[-87.62, 41.88], [-87.61, 41.88], [-87.61, 41.89], [-87.62, 41.89], [-87.62, 41.88]]


@pytest.mark.parametrize(
    ("geofence", "extra", "needle"),
    [
        ({"type": "circle", "radius_m": 5}, {}, "radius_m"),
        ({"type": "circle", "radius_m": 20_000}, {}, "radius_m"),
        ({"type": "Polygon", "coordinates": [[[-87.62, 41.88], [-87.61, 41.88], [-87.62, 41.88]]]}, {},
         "at least 4"),
        ({"type": "Polygon", "coordinates": [[[-87.62, 41.88], [-87.61, 41.88], [-87.60, 41.88],
                                              [-87.62, 41.88]]]}, {}, "area"),
        ({"type": "Polygon", "coordinates": [[[-87.62 + i * 1e-5, 41.88] for i in range(2001)]]}, {},
         "2000"),
        ({"type": "circle", "radius_m": 100}, {"lat": 89.5, "lng": 0}, "85"),
        ({"type": "Polygon", "coordinates": [_SQUARE]}, {"accuracy_max_m": 0}, "accuracy_max_m"),
        ({"type": "Hexagon", "coordinates": []}, {}, "geofence"),
    ],
)
def test_bad_geofences_are_422_naming_the_problem(
    api: tuple[httpx.Client, Settings], geofence: dict[str, Any], extra: dict[str, Any], needle: str
) -> None:
    client, _ = api
    response = client.post("/v1/stores", json={**_STORE, **extra, "geofence": geofence})
    assert response.status_code == 422, response.text
    assert needle in response.json()["message"].replace(",", "")


_PROMO = {"store_id": 1, "name": "p", "body": "20% off"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "body"),
        ({**_PROMO, "body": "   "}, "body"),
        ({**_PROMO, "valid_from": "2026-12-10", "valid_until": "2026-12-01"}, "valid_until is before"),
        ({**_PROMO, "interests": ["Electronics Phones"]}, "interests"),
        ({**_PROMO, "interests": ["electronics//phones"]}, "interests"),
        ({**_PROMO, "hours": {"start": "09:00", "end": "09:00"}}, "hours"),
        ({**_PROMO, "hours": {"start": "25:00", "end": "10:00"}}, "hours.start"),
        ({**_PROMO, "weekdays": [0, 8]}, "weekdays"),
        ({**_PROMO, "weekdays": [1, 1]}, "weekdays"),
        ({**_PROMO, "weekdays": []}, "weekdays"),
        ({**_PROMO, "trigger": "dwell"}, "dwell_minutes"),
        ({**_PROMO, "trigger": "exit"}, "trigger"),
        ({**_PROMO, "trigger": "entry", "dwell_minutes": 5}, "dwell_minutes"),
        ({**_PROMO, "nearby_m": -1}, "nearby_m"),
        ({**_PROMO, "budget": 0}, "budget"),
        ({**_PROMO, "interest_weights": {"garden": 2}}, "interest_weights"),
        ({**_PROMO, "interests": ["garden"], "interest_weights": {"garden": 0}}, "interest_weights"),
    ],
)
def test_bad_promotions_are_422_naming_the_problem(
    api: tuple[httpx.Client, Settings], body: dict[str, Any], needle: str
) -> None:
    client, _ = api
    response = client.post("/v1/promotions", json=body)
    assert response.status_code == 422, response.text
    assert needle in response.json()["message"]


def test_a_good_promotion_round_trips_its_policy(api: tuple[httpx.Client, Settings]) -> None:
    client, _ = api
    store = client.post("/v1/stores", json={**_STORE, "accuracy_max_m": 40,
                                             "geofence": {"type": "circle", "radius_m": 80}})
    assert store.status_code == 201, store.text
    assert store.json()["accuracy_max_m"] == 40
    policy = {"hours": {"start": "22:00:00", "end": "02:00:00"}, "weekdays": [5, 6],
              "trigger": "dwell", "dwell_minutes": 5, "max_gap_minutes": 3, "nearby_m": 200,
              "cooldown_minutes": 60, "budget": 100, "interest_weights": {"electronics": 2.5}}
    response = client.post("/v1/promotions", json={**_PROMO, "store_id": store.json()["id"],
                                                   "interests": ["electronics"], **policy})
    assert response.status_code == 201, response.text
    assert {k: response.json()[k] for k in policy} == policy
    listed = client.get("/v1/promotions").json()
    assert {k: listed[-1][k] for k in policy} == policy


def test_an_otp_key_replays_its_first_answer_and_refuses_another_body(
    api: tuple[httpx.Client, Settings],
) -> None:
    client, _ = api
    key = {"Idempotency-Key": f"login-{uuid.uuid4().hex[:8]}"}
    otp = {"phone": "+13125550199", "body": "Your code is 1234"}
    first = client.post("/v1/messages/otp", json=otp, headers=key)
    assert first.status_code == 202, first.text
    again = client.post("/v1/messages/otp", json=otp, headers=key)
    assert again.status_code == 202
    assert again.json() == first.json()  # the same message, its first expiry included
    other = client.post("/v1/messages/otp", json={**otp, "body": "Your code is 9999"}, headers=key)
    assert other.status_code == 409
    assert "different request" in other.json()["message"]


_CONSENT = {"at": "2026-01-01T00:00:00Z", "source": "app", "text": "Offers by SMS"}
_FAR = {"user_id": "far", "phone": "+13125550177"}
_CAMPAIGN = {"name": "c", "body": "Hi", "segment": {"everyone": True}, "run_at": "2030-11-26T09:00:00",
             "time_zone": "America/Los_Angeles"}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/stores", {**_STORE, "accuracy_max_m": 5e-324, "geofence": {"type": "circle", "radius_m": 50}},
     "body.accuracy_max_m"),  # > 0, and 0 in the real column: its check failed (500)
    ("/v1/promotions", {**_PROMO, "budget": 2**31}, "body.budget"),  # past the integer column
    ("/v1/visits", _event(accuracy_m=5e-324), "body.accuracy_m"),  # 0 in the history's real
    ("/v1/recipients", {**_FAR, "consent": {**_CONSENT, "at": "4810-01-01T00:00:00Z"}}, "body.consent.at"),
    ("/v1/recipients", {**_FAR, "consent": {**_CONSENT, "at": "9999-12-31T23:59:59"}}, "body.consent.at"),
    ("/v1/campaigns", {**_CAMPAIGN, "run_at": "9999-12-31T20:00:00"}, "body.run_at"),  # +8 h overflowed
    ("/v1/campaigns", {**_CAMPAIGN, "time_zone": "America"}, "body.time_zone"),  # a directory: OSError
    ("/v1/campaigns", {**_CAMPAIGN, "max_rate": 5e-324}, "body.max_rate"),  # preview: a finish past 9999
    ("/v1/campaigns", {**_CAMPAIGN, "segment": {"time_zones": ["é" * 300]}}, "body.segment.time_zones"),
    ("/v1/campaigns", {**_CAMPAIGN, "segment": {"near_stores": {"store_ids": [2**63], "radius_km": 1}}},
     "body.segment.near_stores.store_ids.0"),
])
def test_values_the_tables_cannot_hold_or_that_cannot_be_are_422_naming_the_field(
    api: tuple[httpx.Client, Settings], path: str, body: dict[str, Any], field: str
) -> None:
    client, settings = api
    before = published(settings)
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(f"{field}: "), response.json()["message"]
    assert published(settings) == before


def _recipient(client: httpx.Client) -> str:
    user = f"patch-{uuid.uuid4().hex[:6]}"
    phone = f"+1312555{uuid.uuid4().int % 10_000:04d}"
    made = client.post("/v1/recipients", json={"user_id": user, "phone": phone, "interests": ["garden"],
                                                "time_zone": "America/Chicago", "consent": _CONSENT})
    assert made.status_code == 201, made.text
    return user


@pytest.mark.parametrize(("body", "field"), [
    ({"interests": None}, "body.interests"),  # the schema allowed null, the column does not (500)
    ({"phone": None}, "body.phone"),
    ({"consent": {**_CONSENT, "at": "4810-01-01T00:00:00Z"}}, "body.consent.at"),
])
def test_a_recipient_patch_refuses_null_for_not_null_columns_and_far_future_consent(
    api: tuple[httpx.Client, Settings], body: dict[str, Any], field: str
) -> None:
    client, _ = api
    user = _recipient(client)
    before = client.get(f"/v1/recipients/{user}").json()
    response = client.patch(f"/v1/recipients/{user}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(f"{field}: ")
    assert client.get(f"/v1/recipients/{user}").json() == before


def test_null_clears_what_is_nullable(api: tuple[httpx.Client, Settings]) -> None:
    client, _ = api
    user = _recipient(client)
    cleared = client.patch(f"/v1/recipients/{user}", json={"time_zone": None, "interests": []})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["time_zone"], cleared.json()["interests"]) == (None, [])
    made = client.post("/v1/campaigns", json={**_CAMPAIGN, "max_rate": 20})
    assert made.status_code == 201, made.text
    path = f"/v1/campaigns/{made.json()['id']}"
    refused = client.patch(path, json={"name": None})
    assert refused.status_code == 422, refused.text  # was a silent 200 that changed nothing
    assert refused.json()["message"].startswith("body.name: ")
    uncapped = client.patch(path, json={"max_rate": None})
    assert uncapped.status_code == 200, uncapped.text
    assert client.get(path).json()["max_rate"] is None


def test_an_import_row_consented_in_the_far_future_is_rejected(api: tuple[httpx.Client, Settings]) -> None:
    client, _ = api
    csv = ("user_id,phone,consent_at,last_visit_at\n"
           "imp-now,+13125550161,2026-01-01T00:00:00Z,\n"
           "imp-far,+13125550162,9999-01-01T00:00:00Z,\n"
           "imp-visit,+13125550163,,4810-01-01\n")
    response = client.post("/v1/recipients/import", content=csv.encode(),
                           headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["inserted"], report["rejected"]) == (1, 2)
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, "consent_at"), (4, "last_visit_at")]


def test_quiet_hours_with_an_offset_are_a_422(api: tuple[httpx.Client, Settings]) -> None:
    """An aware time of day was taken (and, with an audience, compared with the naive times of
    the forecast: a TypeError, a 500)."""
    client, _ = api
    made = client.post("/v1/campaigns", json=_CAMPAIGN)
    assert made.status_code == 201, made.text
    quiet = {"quiet_hours": {"start": "21:00+02:00", "end": "08:00"}}
    response = client.post(f"/v1/campaigns/{made.json()['id']}/preview", json=quiet)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("body.quiet_hours.start: ")


def test_the_slowest_campaign_allowed_previews_its_finish(api: tuple[httpx.Client, Settings]) -> None:
    client, _ = api
    _recipient(client)
    made = client.post("/v1/campaigns", json={**_CAMPAIGN, "max_rate": MIN_RATE})
    assert made.status_code == 201, made.text
    preview = client.post(f"/v1/campaigns/{made.json()['id']}/preview", json={})
    assert preview.status_code == 200, preview.text
    assert preview.json()["rate_per_s"] <= MIN_RATE

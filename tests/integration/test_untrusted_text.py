"""Text PostgreSQL cannot store, at every door of the api.

NUL (``\\u0000``) or a lone surrogate (``\\ud800``, sent as its JSON escape in the body bytes:
Python cannot UTF-8-encode it) in any text field of any request (inside lists and dict keys
too), in a path id or in an import row answered 500, or stored nothing and lost a batch. Now:
a 422 naming the field (an import: the row rejected by line and field, the good rows imported),
and nothing stored or published.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.apiworld import CAMPAIGN, CONSENT, MARK, PROMO, STORE, World, api_world

POISONS = {"nul": "\\u0000", "surrogate": "\\ud800"}
REFUSED = ("which cannot be stored", "unable to parse raw data as a unicode string")
"""Ours (PgText, naming the position), or pydantic's: it reads no lone surrogate as a str."""
RECIPIENT = {"user_id": "r-new", "phone": "+13125550188"}
VISIT = {"event_id": "e1", "user_id": "u1", "lat": 41.88, "lng": -87.62, "ts": "$now"}
OTP = {"phone": "+13125550199", "body": "Your code is 1234"}
INBOUND = {"from": "+13125550199", "body": "hello"}

CASES = [
    ("POST", "/v1/stores", {**STORE, "name": "s@@"}, "body.name"),
    ("POST", "/v1/stores", {**STORE, "time_zone": "UTC@@"}, "body.time_zone"),
    ("PUT", "/v1/stores/$store", {**STORE, "name": "s@@"}, "body.name"),
    ("POST", "/v1/promotions", {**PROMO, "name": "p@@"}, "body.name"),
    ("POST", "/v1/promotions", {**PROMO, "body": "b@@"}, "body.body"),
    ("POST", "/v1/promotions", {**PROMO, "interests": ["a@@"]}, "body.interests.0"),
    ("POST", "/v1/promotions", {**PROMO, "interests": ["a"], "interest_weights": {"a@@": 2}},
     "body.interest_weights.a"),  # the key, then "[key]"
    ("PUT", "/v1/promotions/$promotion", {**PROMO, "body": "b@@"}, "body.body"),
    ("POST", "/v1/recipients", {**RECIPIENT, "user_id": "r@@"}, "body.user_id"),
    ("POST", "/v1/recipients", {**RECIPIENT, "phone": "+13125550188@@"}, "body.phone"),
    ("POST", "/v1/recipients", {**RECIPIENT, "time_zone": "UTC@@"}, "body.time_zone"),
    ("POST", "/v1/recipients", {**RECIPIENT, "interests": ["a@@"]}, "body.interests.0"),
    ("POST", "/v1/recipients", {**RECIPIENT, "consent": {**CONSENT, "source": "app@@"}},
     "body.consent.source"),
    ("POST", "/v1/recipients", {**RECIPIENT, "consent": {**CONSENT, "text": "ok@@"}}, "body.consent.text"),
    ("PATCH", "/v1/recipients/$user", {"phone": "@@"}, "body.phone"),
    ("PATCH", "/v1/recipients/$user", {"time_zone": "UTC@@"}, "body.time_zone"),
    ("PATCH", "/v1/recipients/$user", {"interests": ["a", "b@@"]}, "body.interests.1"),
    ("PATCH", "/v1/recipients/$user", {"consent": {**CONSENT, "text": "ok@@"}}, "body.consent.text"),
    ("POST", "/v1/templates", {"name": "t@@", "body": "Hi"}, "body.name"),
    ("POST", "/v1/templates", {"name": "t", "body": "Hi @@"}, "body.body"),
    ("POST", "/v1/campaigns", {**CAMPAIGN, "name": "c@@"}, "body.name"),
    ("POST", "/v1/campaigns", {**CAMPAIGN, "body": "Hi @@"}, "body.body"),
    ("POST", "/v1/campaigns", {**CAMPAIGN, "segment": {"user_ids": ["u1", "u@@"]}},
     "body.segment.user_ids.1"),
    ("POST", "/v1/campaigns", {**CAMPAIGN, "segment": {"everyone": True, "exclude": {"user_ids": ["@@"]}}},
     "body.segment.exclude.user_ids.0"),
    ("POST", "/v1/campaigns", {**CAMPAIGN, "segment": {"time_zones": ["UTC@@"]}},
     "body.segment.time_zones.0"),
    ("PATCH", "/v1/campaigns/$campaign", {"name": "c@@"}, "body.name"),
    ("PATCH", "/v1/campaigns/$campaign", {"body": "Hi @@"}, "body.body"),
    ("POST", "/v1/messages/otp", {**OTP, "body": "code @@"}, "body.body"),
    ("POST", "/v1/messages/otp", {**OTP, "user_id": "u@@"}, "body.user_id"),
    ("POST", "/v1/webhooks/inbound/$tenant", {**INBOUND, "body": "hi @@"}, "body.body"),
    ("POST", "/v1/webhooks/inbound/$tenant", {**INBOUND, "id": "x@@"}, "body.id"),
    ("POST", "/v1/visits", {**VISIT, "user_id": "u@@"}, "body.user_id"),
    ("POST", "/v1/visits", {"events": [VISIT, {**VISIT, "event_id": "e2", "user_id": "u@@"}]},
     "body.events.1.user_id"),
]


@pytest.fixture(scope="module")
def world(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with api_world(broker_url, database_url, tmp_path_factory.mktemp("text")) as made:
        yield made


@pytest.mark.parametrize("poison", sorted(POISONS))
@pytest.mark.parametrize(("method", "path", "body", "field"), CASES,
                         ids=[f"{c[0]} {c[1]} {c[3]}" for c in CASES])
def test_unstorable_text_is_a_422_naming_the_field_and_nothing_is_stored(
    world: World, method: str, path: str, body: dict[str, Any], field: str, poison: str
) -> None:
    before = world.snapshot()
    response = world.send(method, path, body, POISONS[poison])
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["message"].startswith(field), answer["message"]
    assert any(reason in answer["message"] for reason in REFUSED), answer["message"]
    assert len(answer["detail"]) == 1, answer  # the rest of the request was good
    assert world.snapshot() == before


@pytest.mark.parametrize(("method", "path", "field"), [
    ("GET", "/v1/recipients/u%00x", "path.user_id"),
    ("PATCH", "/v1/recipients/u%00x", "path.user_id"),
    ("DELETE", "/v1/recipients/u%00x", "path.user_id"),
    ("GET", "/v1/messages/m%00x", "path.message_key"),
    ("GET", "/r/ab%00cd", "path.code"),
])
def test_a_nul_in_a_path_id_is_a_422_naming_it(world: World, method: str, path: str, field: str) -> None:
    before = world.snapshot()
    body = {"time_zone": None} if method == "PATCH" else None
    response = world.api.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(f"{field}: ")
    assert world.snapshot() == before


_PHONES = itertools.count(2000)


def _recipients(world: World, prefix: str) -> list[str]:
    rows = world.run(world.conn.fetch(
        "SELECT user_id FROM recipients WHERE tenant_id = $1 AND user_id LIKE $2 ORDER BY user_id",
        world.tenant_id, f"{prefix}%"))
    return [r["user_id"] for r in rows]


def test_a_csv_import_rejects_rows_with_nul_and_imports_the_others(world: World) -> None:
    csv = ("user_id,phone,first_name,consent_source\n"
           "csv-good,+13125550170,Ann,\n"
           "csv-name,+13125550171,A\x00n,\n"
           "csv-src,+13125550172,Bo,app\x00\n"
           "csv-id\x00,+13125550173,Cy,\n")
    response = world.api.post("/v1/recipients/import", content=csv.encode(),
                               headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["inserted"], report["rejected"]) == (1, 3)
    assert [(e["line"], e["field"]) for e in report["errors"]] == [
        (3, "first_name"), (4, "consent_source"), (5, "user_id")]
    assert all("cannot be stored" in e["message"] for e in report["errors"])
    assert _recipients(world, "csv-") == ["csv-good"]


@pytest.mark.parametrize("poison", sorted(POISONS))
@pytest.mark.parametrize("ctype", ["application/json", "application/x-ndjson"])
def test_a_json_import_rejects_rows_with_unstorable_text_and_imports_the_others(
    world: World, ctype: str, poison: str
) -> None:
    tag = f"{ctype[-5:]}-{poison}-"
    rows = [{"user_id": f"{tag}good"}, {"user_id": f"{tag}@@"}, {"user_id": f"{tag}ln", "last_name": "X@@"},
            {"user_id": f"{tag}ct", "consent_text": "@@"}, {"user_id": f"{tag}tz", "time_zone": "UTC@@"},
            {"user_id": f"{tag}key", "nick@@": "x"}]
    for row in rows:
        row["phone"] = f"+1312555{next(_PHONES):04d}"
    lines = [json.dumps(r) for r in rows]
    text = ("[" + ",".join(lines) + "]" if ctype == "application/json" else "\n".join(lines))
    response = world.api.post("/v1/recipients/import", content=text.replace(MARK, POISONS[poison]).encode(),
                              headers={"content-type": ctype})
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["inserted"], report["rejected"]) == (1, 5)
    fields = [e["field"] for e in report["errors"]]
    assert fields[:4] == ["user_id", "last_name", "consent_text", "time_zone"]
    assert fields[4] == ascii("nick" + json.loads(f'"{POISONS[poison]}"'))  # escaped, to be answerable
    assert all(any(r in e["message"] for r in REFUSED) for e in report["errors"]), report
    assert _recipients(world, tag) == [f"{tag}good"]

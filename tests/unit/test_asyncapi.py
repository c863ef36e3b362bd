"""The committed AsyncAPI document is what the record models say, and covers every topic."""

from __future__ import annotations

import json
from pathlib import Path

from hexcast.asyncapi import CHANNELS, asyncapi_document, render
from hexcast.core.settings import load_settings
from hexcast.core.topics import topic_specs
from streams.models import VisitRecord

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_committed_document_matches_the_models() -> None:
    assert DOC.read_text() == render(), "run `hexcast asyncapi > docs/asyncapi.json`"


def test_every_topic_has_a_channel() -> None:
    topics = set(topic_specs(load_settings(topic_prefix="")))
    assert {c.topic for c in CHANNELS} == topics


def test_every_payload_reference_resolves() -> None:
    doc = json.loads(render())
    schemas = doc["components"]["schemas"]
    refs = [m["payload"]["$ref"] for ch in doc["channels"].values() for m in ch["messages"].values()]
    assert refs
    assert all(r.removeprefix("#/components/schemas/") in schemas for r in refs)


def test_visits_payload_is_the_record_schema() -> None:
    schema = asyncapi_document()["components"]["schemas"]["VisitRecord"]
    assert set(schema["required"]) == {"tenant_id", "user_id", "events", "received_at"}
    example = VisitRecord.model_validate_json(json.dumps({
        "v": 1, "tenant_id": 7, "user_id": "u1", "received_at": "2026-11-27T18:00:00Z",
        "events": [{"event_id": "e1", "lat": 41.88, "lng": -87.62, "accuracy_m": 12.0,
                    "ts": "2026-11-27T17:59:00Z"}],
    }))
    assert example.events[0].event_id == "e1"

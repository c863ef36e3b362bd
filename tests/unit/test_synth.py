"""The synthetic dataset generator: deterministic, realistic shapes, matcher-consistent messages."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import h3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexcast.synth.population import (
    INTERESTS,
    METROS,
    PERSONAS,
    SynthData,
    SynthMessage,
    SynthParams,
    generate,
    geo_messages,
)
from streams import ARCHIVE_RESOLUTION
from targeting.geofence import distance_m
from targeting.models import RecipientCreate, StoreCreate
from targeting.service import fence_cells, interest_match

UNTIL = datetime(2026, 11, 1, tzinfo=UTC)
RES = 10


@pytest.fixture(scope="module")
def data() -> SynthData:
    return generate(SynthParams(recipients=600, stores=24, seed=3, until=UNTIL))


def _messages(data: SynthData) -> list[SynthMessage]:
    cells = [fence_cells(StoreCreate.model_validate({
        "name": s.name, "lat": s.lat, "lng": s.lng, "time_zone": s.time_zone, "geofence": s.geofence,
    }), resolution=RES) for s in data.stores]
    return geo_messages(data, tenant_id=1, store_ids=list(range(101, 101 + len(data.stores))),
                        promotion_ids=list(range(501, 501 + len(data.promotions))), cells=cells,
                        resolution=RES)


def test_same_seed_same_data_and_another_seed_differs() -> None:
    params = SynthParams(recipients=50, stores=6, seed=11, until=UNTIL)
    assert generate(params) == generate(params)
    other = generate(params.model_copy(update={"seed": 12}))
    assert other.visits != generate(params).visits


def test_counts_and_metros(data: SynthData) -> None:
    assert len(data.stores) == 24
    assert len(data.recipients) == 600
    assert len(data.visits) == 6000
    assert {s.metro for s in data.stores} == {m.name for m in METROS}
    assert {r.metro for r in data.recipients} == {m.name for m in METROS}
    centres = {m.name: m for m in METROS}
    for s in data.stores:  # near its metro's centre and a valid store for the API
        m = centres[s.metro]
        assert distance_m(s.lat, s.lng, m.lat, m.lng) <= 15_001
        StoreCreate.model_validate({"name": s.name, "lat": s.lat, "lng": s.lng,
                                    "time_zone": s.time_zone, "geofence": s.geofence})
    assert {p.store for p in data.promotions} == set(range(len(data.stores)))


def test_recipients_are_valid_and_unique(data: SynthData) -> None:
    assert len({r.user_id for r in data.recipients}) == len(data.recipients)
    assert len({r.phone for r in data.recipients}) == len(data.recipients)
    for r in data.recipients:
        RecipientCreate.model_validate({"user_id": r.user_id, "phone": r.phone, "time_zone": r.time_zone,
                                        "interests": r.interests})
        assert r.interests
        assert set(r.interests) <= set(INTERESTS)
        assert r.opted_out_at is None or r.consent_at is not None
    consented = sum(r.consent_at is not None for r in data.recipients) / len(data.recipients)
    assert 0.8 < consented < 1.0


def test_personas_shape_interests(data: SynthData) -> None:
    """Each persona's core interests are far more common among its members than elsewhere."""
    for persona, probs in PERSONAS.items():
        core = max(probs, key=probs.__getitem__)
        inside = [r for r in data.recipients if r.persona == persona]
        outside = [r for r in data.recipients if r.persona != persona and core not in PERSONAS[r.persona]]
        rate_in = sum(core in r.interests for r in inside) / len(inside)
        rate_out = sum(core in r.interests for r in outside) / max(1, len(outside))
        assert rate_in > 0.6 > 0.15 > rate_out


def test_visits_cells_and_window(data: SynthData) -> None:
    assert len({v.event_id for v in data.visits}) == len(data.visits)
    for v in data.visits:
        assert v.cell == h3.latlng_to_cell(v.lat, v.lng, ARCHIVE_RESOLUTION)
        assert UNTIL - timedelta(days=32) <= v.ts < UNTIL
        assert timedelta(0) < v.received_at - v.ts <= timedelta(seconds=30)
    known = {r.user_id for r in data.recipients}
    unknown = sum(v.user_id not in known for v in data.visits)
    assert 0 < unknown < len(data.visits) * 0.05


def test_geo_messages_follow_the_matcher_rules(data: SynthData) -> None:
    messages = _messages(data)
    people = {r.user_id: r for r in data.recipients}
    assert len(messages) > 100
    assert len({m.message_key for m in messages}) == len(messages)
    promo_interests = {501 + n: p.interests for n, p in enumerate(data.promotions)}
    for m in messages:
        person = people[m.user_id]
        assert person.consent_at is not None
        assert person.opted_out_at is None
        assert m.phone == person.phone
        assert interest_match(promo_interests[m.promotion_id], person.interests)
        assert (m.delivered_at is not None) == (m.state == "delivered")
    states = Counter(m.state for m in messages)
    assert states["delivered"] > len(messages) / 2
    assert _messages(data) == messages  # deterministic too


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), until_hour=st.integers(0, 23))
def test_visit_local_hours_follow_the_daily_pattern(seed: int, until_hour: int) -> None:
    """Whatever the seed and end time, visits stay in the window and few happen at night."""
    until = datetime(2026, 3, 8, until_hour, tzinfo=UTC)  # a DST change inside the window
    d = generate(SynthParams(recipients=30, stores=3, seed=seed, until=until, days=10))
    zones = {m.name: ZoneInfo(m.time_zone) for m in METROS}
    home = {r.user_id: zones[r.metro] for r in d.recipients}
    hours = [v.ts.astimezone(home[v.user_id]).hour for v in d.visits if v.user_id in home]
    assert all(until - timedelta(days=12) <= v.ts < until for v in d.visits)
    assert sum(h < 6 for h in hours) < 0.15 * len(hours)

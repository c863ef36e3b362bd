"""Pure analytics helpers: cell roll-ups, GeoJSON, areas and store funnels."""

from __future__ import annotations

from collections import Counter

import h3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.footfall import (
    StoreVisits,
    cells_geojson,
    group_by_nearest,
    rollup,
    store_funnels,
    store_index,
    store_visits,
)
from hexcast.core.errors import InvalidInput
from targeting.geofence import destination
from targeting.models import StoreCreate
from targeting.service import fence_cells

points = st.tuples(st.floats(-60, 60), st.floats(-179, 179))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(points, st.integers(1, 50)), min_size=1, max_size=40), st.integers(0, 8))
def test_rollup_keeps_totals_and_never_adds_cells(
    visits: list[tuple[tuple[float, float], int]], coarse: int
) -> None:
    fine: Counter[str] = Counter()
    for (lat, lng), n in visits:
        fine[h3.latlng_to_cell(lat, lng, 9)] += n
    up = rollup(fine, coarse)
    assert sum(up.values()) == sum(fine.values())
    assert len(up) <= len(fine)
    assert all(h3.get_resolution(c) == coarse for c in up)
    for cell, n in fine.items():
        assert up[h3.cell_to_parent(cell, coarse)] >= n


def test_rollup_refuses_a_finer_resolution() -> None:
    with pytest.raises(InvalidInput, match="resolution"):
        rollup({h3.latlng_to_cell(41.88, -87.63, 7): 1}, 9)


def test_geojson_rings_are_closed_hexagons_around_the_cell() -> None:
    cell = h3.latlng_to_cell(41.88, -87.63, 9)
    fc = cells_geojson({cell: 12})
    (feature,) = fc["features"]
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    assert len(ring) == 7
    lat, lng = h3.cell_to_latlng(cell)
    assert all(abs(x - lng) < 0.01 and abs(y - lat) < 0.01 for x, y in ring)
    assert feature["properties"] == {"cell": cell, "visits": 12}


def test_group_by_nearest_splits_metros() -> None:
    chi = h3.latlng_to_cell(41.9, -87.6, 9)
    nyc = h3.latlng_to_cell(40.7, -74.0, 9)
    groups = group_by_nearest({chi: 3, nyc: 5}, {"chi": (41.88, -87.63), "nyc": (40.75, -73.98)})
    assert groups == {"chi": {chi: 3}, "nyc": {nyc: 5}}
    with pytest.raises(InvalidInput):
        group_by_nearest({chi: 1}, {})


def _store(sid: int, lat: float, lng: float, radius: float) -> dict[str, object]:
    fence = {"type": "circle", "radius_m": radius}
    create = StoreCreate(name=f"s{sid}", lat=lat, lng=lng, time_zone="America/Chicago", geofence=fence)
    return {"id": sid, "tenant_id": 1, "name": f"s{sid}", "lat": lat, "lng": lng, "geofence": fence,
            "cells": fence_cells(create, resolution=10)}


def test_store_visits_use_the_fences() -> None:
    a, b = _store(1, 41.88, -87.63, 100), _store(2, 41.90, -87.65, 50)
    index = store_index([a, b], resolution=10)
    inside_a = destination(41.88, -87.63, 60, 10)
    outside_a = destination(41.88, -87.63, 150, 10)
    inside_b = destination(41.90, -87.65, 20, 200)
    pts = [("u1", *inside_a), ("u1", *inside_a), ("u2", *inside_a), ("u3", *outside_a), ("u3", *inside_b)]
    assert store_visits(index, pts) == {1: StoreVisits(3, 2), 2: StoreVisits(1, 1)}


def test_funnels_sum_promotions_per_store_and_keep_missing_clicks_missing() -> None:
    stores = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    visits = {1: StoreVisits(100, 40), 2: StoreVisits(10, 5)}
    outcomes = {11: {"delivered": 30, "failed": 5}, 12: {"delivered": 10}, 21: {"accepted": 2}}
    promo_store = {11: 1, 12: 1, 21: 2}
    no_clicks = store_funnels(stores, visits, promo_store, outcomes, None)
    assert [(f.visits, f.visitors, f.messages, f.delivered, f.clicks) for f in no_clicks] == [
        (100, 40, 45, 40, None), (10, 5, 2, 0, None), (0, 0, 0, 0, None)]
    assert no_clicks[0].sms_per_visit == pytest.approx(0.45)
    assert no_clicks[0].delivered_per_visit == pytest.approx(0.40)
    assert no_clicks[0].clicks_per_delivered is None
    assert no_clicks[2].sms_per_visit == 0.0
    with_clicks = store_funnels(stores, visits, promo_store, outcomes, {11: 8, 12: 2})
    assert [f.clicks for f in with_clicks] == [10, 0, 0]
    assert with_clicks[0].clicks_per_delivered == pytest.approx(0.25)
    assert with_clicks[1].clicks_per_delivered == 0.0

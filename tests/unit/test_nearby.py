"""NearIndex finds exactly the stores within their nearby radius (buffered cover is a superset)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.nearby import NearIndex
from targeting.geofence import CircleFence, cover_cells, destination, fence_geometry, geometry_distance_m
from targeting.index import CellIndex


@settings(max_examples=60, deadline=None)
@given(lat=st.floats(-60, 60), lng=st.floats(-179, 179), fence_m=st.floats(10, 2000),
       radius=st.integers(1, 3000), away=st.floats(0, 6000), bearing=st.floats(0, 360))
def test_near_matches_the_exact_distance(lat: float, lng: float, fence_m: float, radius: int,
                                         away: float, bearing: float) -> None:
    fence = fence_geometry(CircleFence(type="circle", radius_m=fence_m), lat=lat, lng=lng)
    index = CellIndex(10)
    index.upsert(1, 7, fence, cover_cells(fence, resolution=10))
    near = NearIndex(8)
    near.put(1, 7, fence, float(radius))
    p_lat, p_lng = destination(lat, lng, away, bearing)
    exact = geometry_distance_m(fence, p_lat, p_lng)
    inside = {e.store_id for e in index.containing(p_lat, p_lng)}
    found = near.near(p_lat, p_lng, 7, inside)
    if inside:
        assert found == []
    elif exact <= radius * 0.999:
        assert [s for s, _ in found] == [1]
        assert abs(found[0][1] - exact) < 1e-6
    elif exact > radius * 1.001:
        assert found == []
    assert near.near(p_lat, p_lng, 8, set()) == []  # another tenant's store never

"""CellIndex: point and radius lookups over H3 covers of store fences (pure, no I/O)."""

from __future__ import annotations

import math

import h3
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from hexcast.core.errors import InvalidInput
from targeting.geofence import (
    CircleFence,
    FenceGeometry,
    PolygonFence,
    cover_cells,
    destination,
    distance_m,
    fence_geometry,
    geometry_distance_m,
)
from targeting.index import CellIndex, FenceEntry

PROPERTY = settings(max_examples=60, deadline=None)
OVERSHOOT = 1.0014  # circle polygon vertices sit within 1.0014 * radius of the centre
NYC = (40.7128, -74.0060)


def circle_geom(lat: float, lng: float, radius_m: float) -> FenceGeometry:
    return fence_geometry(CircleFence(type="circle", radius_m=radius_m), lat=lat, lng=lng)


def indexed(index: CellIndex, store_id: int, geom: FenceGeometry, tenant_id: int = 1) -> None:
    index.upsert(store_id, tenant_id, geom, cover_cells(geom, resolution=index.resolution))


def ids(entries: list[FenceEntry]) -> list[int]:
    return [e.store_id for e in entries]


def cell_diameter_m(lat: float, lng: float, resolution: int) -> float:
    """Upper bound on the distance between two points of the point's cell."""
    cell = h3.latlng_to_cell(lat, lng, resolution)
    c_lat, c_lng = h3.cell_to_latlng(cell)
    return 2 * max(
        distance_m(c_lat, c_lng, v_lat, v_lng) for v_lat, v_lng in h3.cell_to_boundary(cell)
    )


@st.composite
def star_points(draw: st.DrawFn) -> tuple[FenceGeometry, float, float]:
    """A star-shaped polygon fence (every bearing gap < 180 degrees) and a point inside it."""
    lat, lng = draw(st.floats(-60, 60)), draw(st.floats(-170, 170))
    radius, n = draw(st.floats(50, 5_000)), draw(st.integers(3, 12))
    ring = []
    for i in range(n):
        bearing = 360.0 * (i + draw(st.floats(0.0, 0.45))) / n
        v_lat, v_lng = destination(lat, lng, radius * draw(st.floats(0.2, 1.0)), bearing)
        ring.append((v_lng, v_lat))
    geom = fence_geometry(PolygonFence(type="Polygon", coordinates=[ring]), lat=lat, lng=lng)
    # a point of the fan triangle (centre, ring[i], ring[i+1]), just inside its outer edge
    i = draw(st.integers(0, n - 1))
    (x1, y1), (x2, y2) = ring[i], ring[(i + 1) % n]
    u, v = draw(st.floats(0, 1)), draw(st.floats(0, 1))
    if u + v > 1:
        u, v = 1 - u, 1 - v
    # strictly inside: an edge point computed in floats can land a hair outside the ring
    u, v = u * 0.9999, v * 0.9999
    return geom, lat + u * (y1 - lat) + v * (y2 - lat), lng + u * (x1 - lng) + v * (x2 - lng)


# ----------------------------------------------------------------------------- properties


@PROPERTY
@given(case=star_points(), resolution=st.integers(7, 10))
def test_point_inside_polygon_is_found(
    case: tuple[FenceGeometry, float, float], resolution: int
) -> None:
    geom, lat, lng = case
    index = CellIndex(resolution)
    indexed(index, 7, geom)
    assert ids(index.candidates(lat, lng)) == [7]
    assert ids(index.containing(lat, lng)) == [7]


@PROPERTY
@given(
    lat=st.floats(-60, 60),
    lng=st.floats(-170, 170),
    radius=st.floats(10, 10_000),
    resolution=st.integers(7, 10),
    frac=st.floats(0, 1),
    bearing=st.floats(0, 360),
)
def test_point_inside_circle_is_found(
    lat: float, lng: float, radius: float, resolution: int, frac: float, bearing: float
) -> None:
    if radius > 3_000:
        resolution = min(resolution, 9)  # keeps big covers (and the test) fast
    index = CellIndex(resolution)
    indexed(index, 3, circle_geom(lat, lng, radius))
    p_lat, p_lng = destination(lat, lng, radius * frac, bearing)
    assert ids(index.candidates(p_lat, p_lng)) == [3]
    assert ids(index.containing(p_lat, p_lng)) == [3]
    assert index.nearby(p_lat, p_lng, 0.0)[0][1] == 0.0


@PROPERTY
@given(
    lat=st.floats(-60, 60),
    lng=st.floats(-170, 170),
    radius=st.floats(10, 3_000),
    resolution=st.integers(7, 10),
    extra=st.floats(0.001, 3.0),
    bearing=st.floats(0, 360),
)
def test_point_outside_circle_is_not_found(
    lat: float, lng: float, radius: float, resolution: int, extra: float, bearing: float
) -> None:
    """Beyond the polygon (<= 1.0014 r) nothing contains the point; beyond that plus the
    diameter of the point's cell it is not even a candidate."""
    index = CellIndex(resolution)
    indexed(index, 3, circle_geom(lat, lng, radius))
    edge = h3.average_hexagon_edge_length(resolution, "m")
    p_lat, p_lng = destination(lat, lng, radius * OVERSHOOT + 0.01 + extra * edge, bearing)
    assert index.containing(p_lat, p_lng) == []
    if distance_m(lat, lng, p_lat, p_lng) > radius * OVERSHOOT + cell_diameter_m(
        p_lat, p_lng, resolution
    ):
        assert index.candidates(p_lat, p_lng) == []


@PROPERTY
@given(
    lat=st.floats(-60, 60),
    lng=st.floats(-170, 170),
    stores=st.lists(
        st.tuples(st.floats(0, 30_000), st.floats(0, 360), st.floats(10, 2_000)),
        min_size=1,
        max_size=6,
    ),
    radius=st.floats(0, 40_000),
    resolution=st.integers(8, 10),
)
def test_nearby_matches_brute_force(
    lat: float,
    lng: float,
    stores: list[tuple[float, float, float]],
    radius: float,
    resolution: int,
) -> None:
    index = CellIndex(resolution)
    geoms = {}
    for store_id, (dist, bearing, fence_r) in enumerate(stores):
        s_lat, s_lng = destination(lat, lng, dist, bearing)
        geoms[store_id] = circle_geom(s_lat, s_lng, fence_r)
        indexed(index, store_id, geoms[store_id])
    expected = sorted(
        (d, store_id)
        for store_id, geom in geoms.items()
        if (d := geometry_distance_m(geom, lat, lng)) <= radius
    )
    got = [(d, entry.store_id) for entry, d in index.nearby(lat, lng, radius)]
    assert got == expected


# ----------------------------------------------------------------------------- updates


def test_upsert_replace_and_remove() -> None:
    index = CellIndex(10)
    assert len(index) == 0
    near = circle_geom(*NYC, 300)
    entry = index.upsert(1, 42, near, cover_cells(near, resolution=10))
    assert entry == FenceEntry(1, 42, near, 10)
    assert len(index) == 1
    assert 1 in index
    assert index.get(1) is entry
    assert index.containing(*NYC) == [entry]

    far_lat, far_lng = destination(*NYC, 5_000, 90)
    moved = circle_geom(far_lat, far_lng, 300)
    index.upsert(1, 42, moved, cover_cells(moved, resolution=10))
    assert len(index) == 1
    assert index.candidates(*NYC) == []  # old cells are gone
    assert ids(index.containing(far_lat, far_lng)) == [1]

    assert index.remove(1) is True
    assert index.remove(1) is False
    assert len(index) == 0
    assert 1 not in index
    assert index.candidates(far_lat, far_lng) == []
    assert index.nearby(far_lat, far_lng, 50_000) == []


def test_overlapping_stores_and_tenants() -> None:
    index = CellIndex(10)
    east_lat, east_lng = destination(*NYC, 800, 90)
    indexed(index, 5, circle_geom(east_lat, east_lng, 500), tenant_id=2)
    indexed(index, 2, circle_geom(*NYC, 500), tenant_id=1)
    mid_lat, mid_lng = destination(*NYC, 400, 90)
    both = index.containing(mid_lat, mid_lng)
    assert [(e.store_id, e.tenant_id) for e in both] == [(2, 1), (5, 2)]
    assert ids(index.containing(*NYC)) == [2]
    west_lat, west_lng = destination(*NYC, 450, 270)
    assert ids(index.containing(west_lat, west_lng)) == [2]
    index.remove(2)
    assert ids(index.containing(mid_lat, mid_lng)) == [5]
    assert index.containing(west_lat, west_lng) == []


def test_compacted_and_coarse_cells() -> None:
    index = CellIndex(10)
    geom = circle_geom(*NYC, 2_000)
    cells = cover_cells(geom, resolution=10)
    assert len({h3.get_resolution(c) for c in cells}) > 1
    index.upsert(1, 1, geom, cells)
    coarse = h3.latlng_to_cell(*NYC, 6)  # a whole res-6 cell around the other store
    index.upsert(2, 1, geom, [coarse, coarse])  # duplicates are harmless
    for cell in h3.cell_to_children(coarse, 8)[:20]:
        assert 2 in ids(index.candidates(*h3.cell_to_latlng(cell)))
    assert ids(index.candidates(*NYC)) == [1, 2]


def test_geometry_is_prepared_and_boundary_points_count() -> None:
    index = CellIndex(9)
    ring = [(-74.0, 40.7), (-73.99, 40.7), (-73.99, 40.71), (-74.0, 40.71), (-74.0, 40.7)]
    geom = fence_geometry(PolygonFence(type="Polygon", coordinates=[ring]), lat=0, lng=0)
    indexed(index, 1, geom)
    entry = index.get(1)
    assert entry is not None
    assert shapely.is_prepared(entry.geometry)
    assert ids(index.containing(40.7, -73.995)) == [1]  # on the southern edge
    assert ids(index.containing(40.71, -74.0)) == [1]  # a corner


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (["not-a-cell"], "not a valid H3 cell"),
        ([h3.latlng_to_cell(*NYC, 11)], "resolution 11, finer than the index resolution 10"),
        ([], "at least one H3 cell"),
    ],
)
def test_upsert_rejects_bad_cells_and_keeps_state(cells: list[str], message: str) -> None:
    index = CellIndex(10)
    geom = circle_geom(*NYC, 100)
    indexed(index, 1, geom)
    with pytest.raises(InvalidInput, match=message) as err:
        index.upsert(1, 1, geom, cells)
    assert err.value.field == "cells"
    assert ids(index.containing(*NYC)) == [1]


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInput, match="resolution 16"):
        CellIndex(16)
    index = CellIndex(10)
    with pytest.raises(InvalidInput, match="Polygon or MultiPolygon"):
        index.upsert(1, 1, None, [h3.latlng_to_cell(*NYC, 10)])
    with pytest.raises(InvalidInput, match="not a valid latitude/longitude"):
        index.candidates(91.0, 0.0)
    with pytest.raises(InvalidInput, match="not a valid latitude/longitude"):
        index.containing(0.0, float("nan"))
    with pytest.raises(InvalidInput, match="radius"):
        index.nearby(0.0, 0.0, -1.0)


# ----------------------------------------------------------------------------- nearby


def test_nearby_orders_by_distance_with_accurate_metres() -> None:
    index = CellIndex(10)
    indexed(index, 1, circle_geom(*NYC, 200))  # contains the query point
    b_lat, b_lng = destination(*NYC, 1_000, 45)
    indexed(index, 2, circle_geom(b_lat, b_lng, 100))  # edge ~900 m away
    c_lat, c_lng = destination(*NYC, 600, 200)
    indexed(index, 3, circle_geom(c_lat, c_lng, 100))  # edge ~500 m away
    d_lat, d_lng = destination(*NYC, 50_000, 300)
    indexed(index, 4, circle_geom(d_lat, d_lng, 1_000))  # edge ~49 km away

    found = index.nearby(*NYC, 5_000)
    assert [e.store_id for e, _ in found] == [1, 3, 2]
    distances = [d for _, d in found]
    assert distances[0] == 0.0
    assert distances[1] == pytest.approx(500, abs=0.2)
    assert distances[2] == pytest.approx(900, abs=0.2)
    assert [e.store_id for e, _ in index.nearby(*NYC, 600)] == [1, 3]
    wide = index.nearby(*NYC, 60_000)  # exercises the coarse-resolution search
    assert [e.store_id for e, _ in wide] == [1, 3, 2, 4]
    assert wide[-1][1] == pytest.approx(49_000, abs=1.5)


def test_nearby_ties_are_ordered_by_store_id() -> None:
    index = CellIndex(9)
    geom = circle_geom(*NYC, 300)
    for store_id in (9, 4, 6):
        indexed(index, store_id, geom)
    assert [(e.store_id, d) for e, d in index.nearby(*NYC, 10)] == [(4, 0.0), (6, 0.0), (9, 0.0)]


def test_nearby_across_the_antimeridian() -> None:
    index = CellIndex(9)
    s_lat, s_lng = destination(-17.0, 179.995, 3_000, 90)  # lands east of 180, i.e. lng < -179
    indexed(index, 1, circle_geom(s_lat, s_lng, 500))
    assert s_lng < 0
    found = index.nearby(-17.0, 179.995, 5_000)
    assert [e.store_id for e, _ in found] == [1]
    assert found[0][1] == pytest.approx(2_500, abs=1)
    assert math.isclose(geometry_distance_m(found[0][0].geometry, s_lat, s_lng), 0.0)

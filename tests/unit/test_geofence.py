"""Geofence models, geometry validation, H3 covering and distances (pure, no I/O)."""

from __future__ import annotations

import math
from typing import Any

import h3
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from hexcast.core.errors import InvalidInput
from targeting.geofence import (
    CIRCLE_VERTICES,
    EARTH_RADIUS_M,
    MAX_POSITIONS,
    CircleFence,
    Geofence,
    MultiPolygonFence,
    PolygonFence,
    cover_cells,
    destination,
    distance_m,
    fence_geometry,
    geometry_area_m2,
    geometry_distance_m,
)

FENCE = TypeAdapter(Geofence)
PROPERTY = settings(max_examples=60, deadline=None)
OVERSHOOT = 1.0014  # circle polygon vertices sit at r * sec(pi/64) * 1.0001 < 1.0014 r


def circle(radius_m: float) -> CircleFence:
    return CircleFence(type="circle", radius_m=radius_m)


def polygon(*rings: list[tuple[float, float]]) -> PolygonFence:
    return PolygonFence(type="Polygon", coordinates=list(rings))


def square(lng: float, lat: float, side: float) -> list[tuple[float, float]]:
    return [(lng, lat), (lng + side, lat), (lng + side, lat + side), (lng, lat + side)]


def star_ring(
    lat: float, lng: float, radius_m: float, fractions: list[float], jitter: list[float]
) -> list[tuple[float, float]]:
    """Star-shaped around (lat, lng): sorted bearings, every gap < 180 degrees."""
    n = len(fractions)
    ring = []
    for i, (frac, jit) in enumerate(zip(fractions, jitter, strict=True)):
        v_lat, v_lng = destination(lat, lng, radius_m * frac, 360.0 * (i + jit) / n)
        ring.append((v_lng, v_lat))
    return ring


@st.composite
def stars(draw: st.DrawFn) -> tuple[float, float, list[tuple[float, float]]]:
    lat = draw(st.floats(-60, 60))
    lng = draw(st.floats(-170, 170))
    radius = draw(st.floats(50, 5_000))
    n = draw(st.integers(3, 12))
    fractions = draw(st.lists(st.floats(0.2, 1.0), min_size=n, max_size=n))
    jitter = draw(st.lists(st.floats(0.0, 0.45), min_size=n, max_size=n))
    return lat, lng, star_ring(lat, lng, radius, fractions, jitter)


def covered(cells: list[str], lat: float, lng: float, resolution: int) -> bool:
    cell = h3.latlng_to_cell(lat, lng, resolution)
    wanted = set(cells)
    return any(h3.cell_to_parent(cell, r) in wanted for r in range(resolution + 1))


# ----------------------------------------------------------------------------- models


def test_models_parse_by_discriminator() -> None:
    assert isinstance(FENCE.validate_python({"type": "circle", "radius_m": 250}), CircleFence)
    ring = [[0, 0], [1, 0], [1, 1], [0, 0]]
    assert isinstance(
        FENCE.validate_python({"type": "Polygon", "coordinates": [ring]}), PolygonFence
    )
    multi = FENCE.validate_python({"type": "MultiPolygon", "coordinates": [[ring]]})
    assert isinstance(multi, MultiPolygonFence)


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "circle", "radius_m": 5},
        {"type": "circle", "radius_m": 20_000},
        {"type": "circle", "radius_m": float("nan")},
        {"type": "circle", "radius_m": 100, "extra": 1},
        {"type": "square", "radius_m": 100},
        {"type": "Polygon", "coordinates": []},
        {"type": "Polygon", "coordinates": [[[0, 0, 5], [1, 0, 5], [1, 1, 5]]]},
    ],
)
def test_models_reject_bad_payloads(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FENCE.validate_python(payload)


# ----------------------------------------------------------------------------- circles


@pytest.mark.parametrize("radius", [5.0, 9.99, 10_000.5, 20_000.0])
def test_circle_radius_out_of_range(radius: float) -> None:
    fence = CircleFence.model_construct(type="circle", radius_m=radius)
    with pytest.raises(InvalidInput, match="radius") as err:
        fence_geometry(fence, lat=40.0, lng=-74.0)
    assert err.value.field == "radius_m"


def test_circle_shape() -> None:
    geom = fence_geometry(circle(1_000), lat=40.0, lng=-74.0)
    assert geom.geom_type == "Polygon"
    assert geom.is_valid
    assert len(geom.exterior.coords) == CIRCLE_VERTICES + 1
    assert geometry_area_m2(geom) == pytest.approx(math.pi * 1_000**2, rel=0.005)
    for lng, lat in geom.exterior.coords:
        assert 1_000 < distance_m(40.0, -74.0, lat, lng) < 1_000 * OVERSHOOT


@PROPERTY
@given(
    lat=st.floats(-80, 80),
    lng=st.floats(-180, 180),
    radius=st.floats(10, 10_000),
    frac=st.floats(0, 1),
    bearing=st.floats(0, 360),
)
def test_circle_contains_every_point_within_radius(
    lat: float, lng: float, radius: float, frac: float, bearing: float
) -> None:
    geom = fence_geometry(circle(radius), lat=lat, lng=lng)
    p_lat, p_lng = destination(lat, lng, radius * frac, bearing)
    assert shapely.intersects_xy(geom, p_lng, p_lat)
    assert geometry_distance_m(geom, p_lat, p_lng) == 0.0


@pytest.mark.parametrize(("lat", "radius"), [(90.0, 10.0), (-89.99, 5_000.0), (84.99, 10_000.0)])
def test_circle_near_pole_rejected(lat: float, radius: float) -> None:
    with pytest.raises(InvalidInput, match="pole"):
        fence_geometry(circle(radius), lat=lat, lng=10.0)


def test_circle_across_antimeridian_is_split() -> None:
    geom = fence_geometry(circle(2_000), lat=-17.0, lng=179.99)
    assert geom.geom_type == "MultiPolygon"
    assert geom.is_valid
    min_x, _, max_x, _ = geom.bounds
    assert min_x >= -180
    assert max_x <= 180
    assert geometry_area_m2(geom) == pytest.approx(math.pi * 2_000**2, rel=0.005)
    west_lat, west_lng = destination(-17.0, 179.99, 1_500, 90)
    assert west_lng < -179.99
    assert shapely.intersects_xy(geom, west_lng, west_lat)
    assert shapely.intersects_xy(geom, 179.98, -17.0)


@pytest.mark.parametrize(("lat", "lng"), [(91.0, 0.0), (0.0, 180.5), (float("nan"), 0.0)])
def test_store_location_out_of_range(lat: float, lng: float) -> None:
    with pytest.raises(InvalidInput, match="out of range"):
        fence_geometry(circle(100), lat=lat, lng=lng)


# ----------------------------------------------------------------------------- polygons


def test_polygon_open_ring_is_closed_and_holes_kept() -> None:
    fence = polygon(square(10.0, 50.0, 0.01), square(10.004, 50.004, 0.002))
    geom = fence_geometry(fence, lat=0, lng=0)
    assert geom.geom_type == "Polygon"
    assert len(geom.interiors) == 1
    assert shapely.intersects_xy(geom, 10.001, 50.001)
    assert not shapely.intersects_xy(geom, 10.005, 50.005)  # in the hole


def test_bow_tie_rejected_naming_self_intersection() -> None:
    bow_tie = [(10.0, 50.0), (10.01, 50.01), (10.01, 50.0), (10.0, 50.01), (10.0, 50.0)]
    with pytest.raises(InvalidInput, match="not valid: Self-intersection at or near point") as err:
        fence_geometry(polygon(bow_tie), lat=0, lng=0)
    assert "lng 10.005000, lat 50.005000" in str(err.value)
    assert err.value.field == "coordinates"


def test_make_valid_repairs_bow_tie() -> None:
    bow_tie = [(10.0, 50.0), (10.01, 50.01), (10.01, 50.0), (10.0, 50.01), (10.0, 50.0)]
    geom = fence_geometry(polygon(bow_tie), lat=0, lng=0, make_valid=True)
    assert geom.is_valid
    assert geom.geom_type == "MultiPolygon"
    assert len(geom.geoms) == 2
    assert shapely.intersects_xy(geom, 10.001, 50.005)
    assert shapely.intersects_xy(geom, 10.009, 50.005)
    assert not shapely.intersects_xy(geom, 10.005, 50.002)


def test_hole_outside_shell_rejected() -> None:
    fence = polygon(square(10.0, 50.0, 0.01), square(10.02, 50.02, 0.001))
    with pytest.raises(InvalidInput, match="not valid: Hole lies outside shell"):
        fence_geometry(fence, lat=0, lng=0)


def test_overlapping_multipolygon_rejected_or_merged() -> None:
    fence = MultiPolygonFence(
        type="MultiPolygon",
        coordinates=[[square(10.0, 50.0, 0.01)], [square(10.005, 50.005, 0.01)]],
    )
    with pytest.raises(InvalidInput, match="not valid"):
        fence_geometry(fence, lat=0, lng=0)
    merged = fence_geometry(fence, lat=0, lng=0, make_valid=True)
    assert merged.geom_type == "Polygon"
    assert merged.is_valid


@pytest.mark.parametrize(
    "ring",
    [
        [(10.0, 50.0), (10.01, 50.0), (10.0, 50.0)],  # 3 positions
        [(10.0, 50.0), (10.01, 50.0)],  # 2 positions, auto-closed to 3
    ],
)
def test_ring_with_too_few_positions(ring: list[tuple[float, float]]) -> None:
    with pytest.raises(InvalidInput, match="at least 4"):
        fence_geometry(polygon(ring), lat=0, lng=0)


@pytest.mark.parametrize(
    "ring",
    [
        [(10.0, 50.0), (10.01, 50.01), (10.02, 50.02), (10.0, 50.0)],  # collinear
        [(10.0, 50.0), (10.0, 50.0), (10.0, 50.0), (10.0, 50.0)],  # one point
        [(10.0, 50.0), (10.0, 50.0), (10.00000001, 50.0), (10.0, 50.00000001)],  # < 1 m2
    ],
)
def test_zero_area_polygon_rejected(ring: list[tuple[float, float]]) -> None:
    with pytest.raises(InvalidInput, match="zero area"):
        fence_geometry(polygon(ring), lat=0, lng=0)


def test_triangle_is_the_smallest_polygon() -> None:
    geom = fence_geometry(polygon([(10.0, 50.0), (10.01, 50.0), (10.0, 50.01)]), lat=0, lng=0)
    assert len(geom.exterior.coords) == 4


def _ngon(positions: int) -> list[tuple[float, float]]:
    """A closed ring with ``positions`` positions (``positions - 1`` corners)."""
    corners = positions - 1
    ring = [
        (
            10.0 + 0.01 * math.cos(2 * math.pi * i / corners),
            50 + 0.01 * math.sin(2 * math.pi * i / corners),
        )
        for i in range(corners)
    ]
    return [*ring, ring[0]]


def test_position_limit_counts_closing_positions() -> None:
    geom = fence_geometry(polygon(_ngon(MAX_POSITIONS)), lat=0, lng=0)
    assert len(geom.exterior.coords) == MAX_POSITIONS
    with pytest.raises(InvalidInput, match="2001 positions; at most 2000"):
        fence_geometry(polygon(_ngon(MAX_POSITIONS + 1)), lat=0, lng=0)
    with pytest.raises(InvalidInput, match="at most 2000"):
        fence_geometry(polygon(_ngon(1_500), _ngon(600)), lat=0, lng=0)


@pytest.mark.parametrize(
    "position", [(181.0, 50.0), (10.0, 91.0), (50.0, 10.0 + 360), (-180.5, 0.0)]
)
def test_position_out_of_range(position: tuple[float, float]) -> None:
    ring = [(10.0, 50.0), (10.01, 50.0), position, (10.0, 50.01)]
    with pytest.raises(InvalidInput, match=r"coordinates\[0\]\[2\] = .* \[lng, lat\]"):
        fence_geometry(polygon(ring), lat=0, lng=0)


def test_polygon_near_pole_rejected() -> None:
    with pytest.raises(InvalidInput, match="near the poles"):
        fence_geometry(polygon(square(10.0, 84.99, 0.02)), lat=0, lng=0)


def test_polygon_across_antimeridian_is_split() -> None:
    ring = [(179.99, -17.0), (-179.99, -17.0), (-179.99, -16.99), (179.99, -16.99)]
    geom = fence_geometry(polygon(ring), lat=0, lng=0)
    assert geom.geom_type == "MultiPolygon"
    assert geom.is_valid
    assert geom.bounds == pytest.approx((-180.0, -17.0, 180.0, -16.99))
    for lng in (179.995, 180.0, -180.0, -179.995):
        assert shapely.intersects_xy(geom, lng, -16.995)
    assert not shapely.intersects_xy(geom, 0.0, -16.995)
    cells = cover_cells(geom, resolution=9)
    for lng in (179.995, 179.9999999, -179.9999999, -179.995):
        assert covered(cells, -16.995, lng, 9)


def test_polygon_spanning_the_globe_rejected() -> None:
    ring = [(-170.0, 10.0), (-10.0, 10.0), (10.0, 10.0), (170.0, 10.0), (0.0, 11.0)]
    with pytest.raises(InvalidInput, match="more than 180 degrees of longitude"):
        fence_geometry(polygon(ring), lat=0, lng=0)


def test_multipolygon_error_paths_name_the_polygon() -> None:
    fence = MultiPolygonFence(
        type="MultiPolygon",
        coordinates=[[square(10.0, 50.0, 0.01)], [[(10.0, 50.0), (10.01, 50.0)]]],
    )
    with pytest.raises(InvalidInput, match=r"coordinates\[1\]\[0\] has 3 positions"):
        fence_geometry(fence, lat=0, lng=0)


# ----------------------------------------------------------------------------- H3 cover


@PROPERTY
@given(star=stars(), resolution=st.integers(7, 10), seed=st.integers(0, 2**32 - 1))
def test_cover_holds_every_point_of_a_polygon(
    star: tuple[float, float, list[tuple[float, float]]], resolution: int, seed: int
) -> None:
    lat, lng, ring = star
    geom = fence_geometry(polygon(ring), lat=lat, lng=lng)
    cells = set(h3.uncompact_cells(cover_cells(geom, resolution=resolution), resolution))
    rng = np.random.default_rng(seed)
    min_x, min_y, max_x, max_y = geom.bounds
    xs, ys = rng.uniform(min_x, max_x, 400), rng.uniform(min_y, max_y, 400)
    inside = shapely.intersects_xy(geom, xs, ys)
    edge = shapely.get_coordinates(shapely.segmentize(geom.boundary, (max_y - min_y) / 100))
    points = [*zip(xs[inside], ys[inside], strict=True), *map(tuple, edge)]
    for x, y in points:
        assert h3.latlng_to_cell(y, x, resolution) in cells


@PROPERTY
@given(
    lat=st.floats(-60, 60),
    lng=st.floats(-180, 180),
    radius=st.floats(10, 3_000),
    resolution=st.integers(7, 10),
    frac=st.floats(0, 1),
    bearing=st.floats(0, 360),
)
def test_cover_holds_every_point_of_a_circle(
    lat: float, lng: float, radius: float, resolution: int, frac: float, bearing: float
) -> None:
    geom = fence_geometry(circle(radius), lat=lat, lng=lng)
    cells = cover_cells(geom, resolution=resolution)
    p_lat, p_lng = destination(lat, lng, radius * OVERSHOOT * frac, bearing)
    if shapely.intersects_xy(geom, p_lng, p_lat):
        assert covered(cells, p_lat, p_lng, resolution)
    assert covered(cells, lat, lng, resolution)


def test_cover_is_compacted_sorted_and_tight() -> None:
    geom = fence_geometry(circle(500), lat=40.7, lng=-74.0)
    cells = cover_cells(geom, resolution=10)
    assert cells == sorted(cells)
    assert all(h3.is_valid_cell(c) and h3.get_resolution(c) <= 10 for c in cells)
    assert any(h3.get_resolution(c) < 10 for c in cells)  # something was compacted
    assert sorted(h3.compact_cells(h3.uncompact_cells(cells, 10))) == cells
    area = sum(h3.cell_area(c, "m^2") for c in cells)
    assert math.pi * 500**2 < area < 2.5 * math.pi * 500**2


def test_cover_respects_holes() -> None:
    fence = polygon(square(10.0, 50.0, 0.01), square(10.002, 50.002, 0.006))
    geom = fence_geometry(fence, lat=0, lng=0)
    cells = cover_cells(geom, resolution=10)
    assert not covered(cells, 50.005, 10.005, 10)  # the middle of the hole
    for step in range(101):  # along the band between the outer ring and the hole
        assert covered(cells, 50.001, 10.0 + step * 0.0001, 10)
        assert covered(cells, 50.0 + step * 0.0001, 10.0085, 10)


def test_cover_of_a_fence_smaller_than_a_cell() -> None:
    geom = fence_geometry(circle(10), lat=40.7, lng=-74.0)
    assert cover_cells(geom, resolution=6) == [h3.latlng_to_cell(40.7, -74.0, 6)]


def test_cover_rejects_bad_resolution_and_huge_fences() -> None:
    geom = fence_geometry(circle(10_000), lat=40.7, lng=-74.0)
    with pytest.raises(InvalidInput, match="resolution 16"):
        cover_cells(geom, resolution=16)
    with pytest.raises(InvalidInput, match="too large"):
        cover_cells(geom, resolution=13)
    with pytest.raises(InvalidInput, match="too large"):
        cover_cells(geom, resolution=10, max_cells=1_000)


# ----------------------------------------------------------------------------- distances


def test_distance_m_known_values() -> None:
    assert distance_m(10.0, 20.0, 10.0, 20.0) == 0.0
    assert distance_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(EARTH_RADIUS_M * math.pi / 180)
    assert distance_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(EARTH_RADIUS_M * math.pi)
    # JFK -> LHR, ~5,540 km on the mean sphere
    assert distance_m(40.6413, -73.7781, 51.4700, -0.4543) == pytest.approx(5_540_000, rel=0.003)
    assert distance_m(0.0, 179.9, 0.0, -179.9) == pytest.approx(22_239, rel=1e-3)


@PROPERTY
@given(
    lat=st.floats(-80, 80),
    lng=st.floats(-180, 180),
    dist=st.floats(0, 50_000),
    bearing=st.floats(0, 360),
)
def test_destination_round_trips_with_distance(
    lat: float, lng: float, dist: float, bearing: float
) -> None:
    p_lat, p_lng = destination(lat, lng, dist, bearing)
    assert -180 <= p_lng <= 180
    assert distance_m(lat, lng, p_lat, p_lng) == pytest.approx(dist, abs=1e-6)


@pytest.mark.parametrize("lng", [-74.0, 179.995])
def test_geometry_distance_to_a_circle(lng: float) -> None:
    geom = fence_geometry(circle(1_000), lat=40.0, lng=lng)
    assert geometry_distance_m(geom, 40.0, lng) == 0.0
    for bearing in (0.0, 45.0, 100.0, 270.0):
        p_lat, p_lng = destination(40.0, lng, 5_000, bearing)
        d = geometry_distance_m(geom, p_lat, p_lng)
        assert 4_000 - 1_000 * (OVERSHOOT - 1) <= d <= 4_000 + 0.01


def test_geometry_distance_to_a_polygon_edge() -> None:
    geom = fence_geometry(polygon(square(10.0, 50.0, 0.01)), lat=0, lng=0)
    expected = distance_m(50.005, 10.01, 50.005, 10.02)
    assert geometry_distance_m(geom, 50.005, 10.02) == pytest.approx(expected, rel=1e-4)
    south = distance_m(50.0, 10.005, 49.99, 10.005)
    assert geometry_distance_m(geom, 49.99, 10.005) == pytest.approx(south, rel=1e-4)

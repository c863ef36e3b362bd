"""Geofence models, geometry construction/validation and H3 covering. Pure: no I/O.

Geometries are shapely objects in planar longitude/latitude degrees (x = lng, y = lat). H3
also treats polygon edges as straight lines in lat/lng, so shapely containment and the H3
cover agree with each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, TypeAlias

import h3
import numpy as np
import shapely
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry import MultiPolygon, Polygon, box

from hexcast.core.errors import InvalidInput

__all__ = [
    "CIRCLE_VERTICES",
    "EARTH_RADIUS_M",
    "MAX_ABS_LAT",
    "MAX_COVER_CELLS",
    "MAX_POSITIONS",
    "MAX_RADIUS_M",
    "MIN_AREA_M2",
    "MIN_RADIUS_M",
    "CircleFence",
    "FenceGeometry",
    "Geofence",
    "MultiPolygonFence",
    "PolygonFence",
    "cover_cells",
    "destination",
    "distance_m",
    "fence_geometry",
    "geometry_area_m2",
    "geometry_distance_m",
    "geometry_distances_m",
]

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), used by every spherical computation in this package."""
MIN_RADIUS_M = 10.0
MAX_RADIUS_M = 10_000.0
CIRCLE_VERTICES = 64
_CIRCLE_MARGIN = 1.0001
"""Stretch of circle vertices, absorbing the sagging of straight lng/lat edges (2e-5 at 84 deg)."""
MAX_POSITIONS = 2_000
"""Most positions a polygon fence may have in total, counting each ring's closing position."""
MIN_RING_POSITIONS = 4
"""GeoJSON rule: a linear ring has at least 4 positions (3 corners plus the closing one)."""
MAX_ABS_LAT = 85.0
MIN_AREA_M2 = 1.0
MAX_COVER_CELLS = 1_000_000
"""Default cap on the (estimated) number of H3 cells ``cover_cells`` will generate."""

FenceGeometry: TypeAlias = Polygon | MultiPolygon
"""A validated fence: a shapely Polygon or MultiPolygon in lng/lat degrees."""

_Position = tuple[float, float]
_Ring = list[_Position]
_Coords = NDArray[np.float64]
_CoordFn = Callable[[_Coords], _Coords]
_ZERO_AREA = "geofence has zero area: its corners coincide or lie on one line"
_REASON_AT = re.compile(r"^(?P<reason>.*)\[(?P<x>\S+) (?P<y>\S+)\]$")


class _FenceModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CircleFence(_FenceModel):
    """A circle of ``radius_m`` metres around the store's own lat/lng."""

    type: Literal["circle"]
    radius_m: float = Field(ge=MIN_RADIUS_M, le=MAX_RADIUS_M)


class PolygonFence(_FenceModel):
    """GeoJSON Polygon: ``[lng, lat]`` positions; first ring exterior, the rest holes."""

    type: Literal["Polygon"]
    coordinates: list[_Ring] = Field(min_length=1)


class MultiPolygonFence(_FenceModel):
    """GeoJSON MultiPolygon: a list of Polygon coordinate arrays."""

    type: Literal["MultiPolygon"]
    coordinates: list[list[_Ring]] = Field(min_length=1)


Geofence = Annotated[CircleFence | PolygonFence | MultiPolygonFence, Field(discriminator="type")]


# ------------------------------------------------------------------------------ distances


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle (haversine) distance in metres on a sphere of radius EARTH_RADIUS_M."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def destination(lat: float, lng: float, distance: float, bearing_deg: float) -> tuple[float, float]:
    """(lat, lng) reached going ``distance`` metres from (lat, lng) on a great circle with the
    initial bearing ``bearing_deg`` (clockwise from north); longitude normalised to -180..180."""
    delta, theta = distance / EARTH_RADIUS_M, math.radians(bearing_deg)
    phi1, lam1 = math.radians(lat), math.radians(lng)
    sin_phi2 = math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
    lam2 = lam1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1),
        math.cos(delta) - math.sin(phi1) * sin_phi2,
    )
    lng2 = (math.degrees(lam2) + 180.0) % 360.0 - 180.0
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_phi2)))), lng2


def _azimuthal_equidistant(lat0: float, lng0: float) -> _CoordFn:
    """Forward azimuthal-equidistant projection, in metres, centred on (lat0, lng0)."""
    p0 = math.radians(lat0)
    sin_p0, cos_p0 = math.sin(p0), math.cos(p0)

    def project(coords: _Coords) -> _Coords:
        lam = np.radians((coords[:, 0] - lng0 + 180.0) % 360.0 - 180.0)
        phi = np.radians(coords[:, 1])
        cos_phi = np.cos(phi)
        hav = np.sin((phi - p0) / 2) ** 2 + cos_p0 * cos_phi * np.sin(lam / 2) ** 2
        c = 2 * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0)))
        tiny = c < 1e-12
        k = EARTH_RADIUS_M * np.where(tiny, 1.0, c / np.where(tiny, 1.0, np.sin(c)))
        x = k * cos_phi * np.sin(lam)
        y = k * (cos_p0 * np.sin(phi) - sin_p0 * cos_phi * np.cos(lam))
        return np.column_stack((x, y))

    return project


def geometry_distance_m(geom: FenceGeometry, lat: float, lng: float) -> float:
    """Metres from (lat, lng) to the nearest point of ``geom``; 0 inside or on the boundary."""
    return geometry_distances_m([geom], lat, lng)[0]


def geometry_distances_m(geoms: Sequence[FenceGeometry], lat: float, lng: float) -> list[float]:
    """``geometry_distance_m`` for many geometries at once (one vectorised pass).

    Projects the geometries azimuthal-equidistantly around the point: exact to vertices and
    accurate to a small fraction of a percent along edges for fence-sized geometries.
    """
    array = np.empty(len(geoms), dtype=object)
    array[:] = geoms
    out = np.zeros(len(geoms))
    outside = ~shapely.intersects_xy(array, lng, lat)
    if outside.any():
        projected = shapely.transform(array[outside], _azimuthal_equidistant(lat, lng))
        out[outside] = shapely.distance(projected, shapely.Point(0.0, 0.0))
    return [float(d) for d in out]


def geometry_area_m2(geom: FenceGeometry) -> float:
    """Area in square metres on the sphere of the region bounded by straight lng/lat edges."""
    return sum(
        _ring_area_m2(p.exterior) - sum(_ring_area_m2(hole) for hole in p.interiors)
        for p in _polygons(geom)
    )


def _ring_area_m2(ring: Any) -> float:
    """|R^2 * closed integral of sin(lat) d(lng)| along the ring, exact per straight edge."""
    lam, phi = np.radians(np.asarray(ring.coords)).T
    d_phi = np.diff(phi)
    mean_sin = np.sin((phi[1:] + phi[:-1]) / 2) * np.sinc(d_phi / (2 * math.pi)) - np.sin(phi[0])
    return float(abs(np.sum(np.diff(lam) * mean_sin)) * EARTH_RADIUS_M**2)


# ------------------------------------------------------------------------------ geometry


def fence_geometry(
    fence: Geofence, *, lat: float, lng: float, make_valid: bool = False
) -> FenceGeometry:
    """Validate ``fence`` and build its shapely geometry (lng/lat degrees).

    ``lat``/``lng`` is the store location: the centre of a circle (range-checked but otherwise
    unused for polygons). A circle becomes a 64-gon *circumscribed* about the geodesic circle:
    every point within ``radius_m`` of the centre is inside, and the polygon overshoots by at
    most 0.13 % of the radius, at its vertices. Polygons: positions are ``[lng, lat]``; open
    rings are closed; a ring needs >= 4 positions and a fence <= 2,000, both counting closing
    positions; area must be >= 1 m2; the polygon must be valid (simple, holes inside) unless
    ``make_valid``, in which case shapely.make_valid (method "structure": shells unioned, holes
    subtracted) repairs it, keeping polygonal parts only. Longitudes spanning > 180 degrees are
    read as crossing the antimeridian; such fences are split there into parts within
    -180..180. Latitudes beyond +/-85 degrees are refused. Raises InvalidInput.
    """
    _check_lat_lng(lat, lng)
    if isinstance(fence, CircleFence):
        return _circle_geometry(lat, lng, fence.radius_m)
    polys = [fence.coordinates] if isinstance(fence, PolygonFence) else fence.coordinates
    return _polygon_geometry(polys, make_valid=make_valid)


def _check_lat_lng(lat: float, lng: float) -> None:
    if not -90.0 <= lat <= 90.0:
        raise InvalidInput(f"latitude {lat} is out of range -90..90", field="lat")
    if not -180.0 <= lng <= 180.0:
        raise InvalidInput(f"longitude {lng} is out of range -180..180", field="lng")


def _circle_geometry(lat: float, lng: float, radius_m: float) -> FenceGeometry:
    if not MIN_RADIUS_M <= radius_m <= MAX_RADIUS_M:
        raise InvalidInput(
            f"circle radius {radius_m} m is out of range: it must be between "
            f"{MIN_RADIUS_M:g} and {MAX_RADIUS_M:g} metres",
            field="radius_m",
        )
    reach = radius_m / math.cos(math.pi / CIRCLE_VERTICES) * _CIRCLE_MARGIN
    if abs(lat) + math.degrees(reach / EARTH_RADIUS_M) > MAX_ABS_LAT:
        raise InvalidInput(
            f"a circle of {radius_m:g} m around latitude {lat} reaches beyond latitude "
            f"+/-{MAX_ABS_LAT:g}; geofences this close to a pole are not supported",
            field="radius_m",
        )
    ring = []
    for i in range(CIRCLE_VERTICES):
        v_lat, v_lng = destination(lat, lng, reach, 360.0 * i / CIRCLE_VERTICES)
        ring.append((lng + (v_lng - lng + 180.0) % 360.0 - 180.0, v_lat))  # unwrapped near lng
    return _split_antimeridian(Polygon(ring))


def _polygon_geometry(
    polys: Sequence[Sequence[Sequence[_Position]]], *, make_valid: bool
) -> FenceGeometry:
    rings = [
        [_ring(ring, f"coordinates{_path(polys, p)}[{r}]") for r, ring in enumerate(poly)]
        for p, poly in enumerate(polys)
    ]
    for p, poly_rings in enumerate(rings):
        if not poly_rings:
            raise InvalidInput(f"coordinates{_path(polys, p)} has no rings", field="coordinates")
    total = sum(len(ring) for poly_rings in rings for ring in poly_rings)
    if total > MAX_POSITIONS:
        raise InvalidInput(
            f"geofence has {total} positions; at most {MAX_POSITIONS} are allowed "
            "(counting each ring's closing position)",
            field="coordinates",
        )
    rings = _unwrap_antimeridian(rings)
    geom = _as_fence_geometry([Polygon(shell, holes) for shell, *holes in rings])
    geom = _validated(geom, make_valid=make_valid)
    return _split_antimeridian(geom)


def _path(polys: Sequence[object], index: int) -> str:
    """Index path of a polygon in error messages: '' for a lone Polygon, else '[i]'."""
    return "" if len(polys) == 1 else f"[{index}]"


def _ring(ring: Sequence[_Position], where: str) -> list[_Position]:
    points: list[_Position] = []
    for i, (x, y) in enumerate(ring):
        ok = math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90
        if not ok:
            raise InvalidInput(
                f"{where}[{i}] = [{x}, {y}] is out of range: positions are [lng, lat] with "
                "longitude in -180..180 and latitude in -90..90",
                field="coordinates",
            )
        if abs(y) > MAX_ABS_LAT:
            raise InvalidInput(
                f"{where}[{i}] has latitude {y}; geofences beyond latitude "
                f"+/-{MAX_ABS_LAT:g} (near the poles) are not supported",
                field="coordinates",
            )
        points.append((float(x), float(y)))
    if points and points[0] != points[-1]:
        points.append(points[0])
    if len(points) < MIN_RING_POSITIONS:
        raise InvalidInput(
            f"{where} has {len(points)} positions (once closed); a ring needs at least "
            f"{MIN_RING_POSITIONS}: three distinct corners plus the closing position",
            field="coordinates",
        )
    return points


def _unwrap_antimeridian(rings: list[list[list[_Position]]]) -> list[list[list[_Position]]]:
    """If longitudes span > 180 degrees, read the fence as crossing the antimeridian."""
    xs = [x for poly in rings for ring in poly for x, _ in ring]
    if max(xs) - min(xs) <= 180.0:
        return rings
    shifted = [[[(x + 360.0 if x < 0 else x, y) for x, y in ring] for ring in p] for p in rings]
    xs = [x for poly in shifted for ring in poly for x, _ in ring]
    if max(xs) - min(xs) > 180.0:
        raise InvalidInput(
            "geofence spans more than 180 degrees of longitude either way around the globe; "
            "it is far too large",
            field="coordinates",
        )
    return shifted


def _validated(geom: FenceGeometry, *, make_valid: bool) -> FenceGeometry:
    if not geom.is_valid:
        repaired = _polygonal(shapely.make_valid(geom, method="structure", keep_collapsed=False))
        if repaired is None or geometry_area_m2(repaired) < MIN_AREA_M2:
            raise InvalidInput(_ZERO_AREA, field="coordinates")
        if not make_valid:
            raise InvalidInput(
                f"geofence is not valid: {_reason(geom)}; fix the polygon or submit it with "
                "make_valid to have it repaired",
                field="coordinates",
            )
        geom = repaired
    if geometry_area_m2(geom) < MIN_AREA_M2:
        raise InvalidInput(_ZERO_AREA, field="coordinates")
    return geom


def _reason(geom: FenceGeometry) -> str:
    """shapely's validity reason, with its '[x y]' location spelled out."""
    reason = str(shapely.is_valid_reason(geom))
    match = _REASON_AT.match(reason)
    if match is None:
        return reason
    lng = (float(match["x"]) + 180.0) % 360.0 - 180.0
    return f"{match['reason']} at or near point (lng {lng:.6f}, lat {float(match['y']):.6f})"


def _polygons(geom: Any) -> list[Polygon]:
    """Polygonal parts of any geometry (collections are flattened; lines/points dropped)."""
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if hasattr(geom, "geoms"):
        return [p for part in geom.geoms for p in _polygons(part)]
    return []


def _as_fence_geometry(polys: list[Polygon]) -> FenceGeometry:
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _polygonal(geom: Any) -> FenceGeometry | None:
    polys = _polygons(geom)
    if not polys:
        return None
    return _as_fence_geometry(_polygons(shapely.union_all(polys)))


def _split_antimeridian(geom: FenceGeometry) -> FenceGeometry:
    """Cut a geometry with longitudes beyond +/-180 into parts within -180..180."""
    min_x, _, max_x, _ = geom.bounds
    if min_x >= -180.0 and max_x <= 180.0:
        return geom
    parts: list[Polygon] = []
    for offset in (-360.0, 0.0, 360.0):
        piece = geom.intersection(box(offset - 180.0, -90.0, offset + 180.0, 90.0))
        shift = np.array([offset, 0.0])
        parts.extend(_polygons(shapely.transform(piece, lambda c, s=shift: c - s)))
    return _as_fence_geometry(parts)


# ------------------------------------------------------------------------------ H3 cover


def cover_cells(
    geom: FenceGeometry, *, resolution: int, max_cells: int = MAX_COVER_CELLS
) -> list[str]:
    """Compacted H3 cells (hex ids, sorted) covering every point of ``geom``.

    Every point inside or on the boundary of ``geom`` maps (``h3.latlng_to_cell`` at
    ``resolution``) to a returned cell or to a descendant of one. Cells are those overlapping
    the geometry ("overlap" containment), then compacted, so coarser cells appear where all
    seven children were present. Raises InvalidInput for a bad resolution, an empty geometry,
    or one needing more than about ``max_cells`` cells at ``resolution``.
    """
    if not 0 <= resolution <= 15:
        raise InvalidInput(f"H3 resolution {resolution} is out of range 0..15", field="resolution")
    polys = _polygons(geom)
    if not polys:
        raise InvalidInput("geofence geometry is empty", field="geometry")
    estimate = geometry_area_m2(geom) / h3.average_hexagon_area(resolution, "m^2")
    if estimate > max_cells:
        raise InvalidInput(
            f"geofence is too large to index at H3 resolution {resolution}: about "
            f"{estimate:,.0f} cells, more than the limit of {max_cells:,}",
            field="geometry",
        )
    cells = h3.h3shape_to_cells_experimental(_h3shape(polys), resolution, contain="overlap")
    return sorted(h3.compact_cells(set(cells)))  # a MultiPolygon may repeat cells


def _h3shape(polys: list[Polygon]) -> h3.H3Shape:
    """h3 shape, with (lat, lng) vertex order and without closing vertices."""

    def loop(ring: Any) -> list[tuple[float, float]]:
        return [(y, x) for x, y in ring.coords[:-1]]

    shapes = [h3.LatLngPoly(loop(p.exterior), *(loop(i) for i in p.interiors)) for p in polys]
    return shapes[0] if len(shapes) == 1 else h3.LatLngMultiPoly(*shapes)

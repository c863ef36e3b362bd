"""In-memory H3 cell index of store geofences, for the matcher's hot path. Pure: no I/O.

Stores are indexed by the (possibly compacted) cells of their cover. A point is looked up by
its cell at the index resolution and that cell's ancestors, computed with bit operations on
integer H3 ids and only at resolutions actually present, so ``candidates`` costs a couple of
microseconds. Knows nothing of promotions: the matcher maps stores to promotions itself.
Not thread-safe; use it from one thread (e.g. the event loop) or guard it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import h3
import shapely
from h3.api import basic_int as h3i
from shapely.geometry import MultiPolygon, Polygon

from hexcast.core.errors import InvalidInput
from targeting.geofence import FenceGeometry, distance_m, geometry_distances_m

__all__ = ["CellIndex", "FenceEntry"]

_RES_SHIFT = 52
_RES_CLEAR = ~(0xF << _RES_SHIFT)
_RES_SET = tuple((r << _RES_SHIFT) | ((1 << (3 * (15 - r))) - 1) for r in range(16))
"""``(cell & _RES_CLEAR) | _RES_SET[r]`` is the ancestor of ``cell`` at resolution ``r``."""
_MAX_DISK_K = 6
"""``nearby`` searches a grid disk of at most this many rings (127 cells), coarsening if need be."""
_EDGE_SAFETY = 0.75
"""Shrinks the local edge length when sizing the disk: cells vary in size across the disk."""


def _parent(cell: int, res: int) -> int:
    return (cell & _RES_CLEAR) | _RES_SET[res]


def _resolution(cell: int) -> int:
    return (cell >> _RES_SHIFT) & 0xF


def _with_ancestors(cells: Iterable[int]) -> set[int]:
    return {_parent(cell, r) for cell in cells for r in range(_resolution(cell) + 1)}


@dataclass(frozen=True, slots=True)
class FenceEntry:
    """One store's fence. ``geometry`` (lng/lat degrees) is shapely-prepared by the index."""

    store_id: int
    tenant_id: int
    geometry: FenceGeometry
    resolution: int


class CellIndex:
    """Maps H3 cells to store fences; answers point and radius queries."""

    __slots__ = (
        "_cells",
        "_entries",
        "_present",
        "_res_counts",
        "_resolution",
        "_reach",
        "_store_cells",
        "_tree",
    )

    def __init__(self, resolution: int) -> None:
        if not 0 <= resolution <= 15:
            raise InvalidInput(
                f"H3 resolution {resolution} is out of range 0..15", field="resolution"
            )
        self._resolution = resolution
        self._entries: dict[int, FenceEntry] = {}
        self._store_cells: dict[int, tuple[int, ...]] = {}
        self._cells: dict[int, dict[int, FenceEntry]] = {}  # stored cell -> store -> entry
        self._tree: dict[int, set[int]] = {}  # stored cell or any ancestor -> store ids
        self._res_counts = [0] * 16
        self._present: tuple[int, ...] = ()  # resolutions with stored cells, finest first
        self._reach: dict[int, tuple[float, float, float]] = {}  # store -> bounding circle

    @property
    def resolution(self) -> int:
        return self._resolution

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, store_id: object) -> bool:
        return store_id in self._entries

    def get(self, store_id: int) -> FenceEntry | None:
        return self._entries.get(store_id)

    # ------------------------------------------------------------------------- updates

    def upsert(
        self, store_id: int, tenant_id: int, geometry: FenceGeometry, cells: Iterable[str]
    ) -> FenceEntry:
        """Add or replace a store. ``cells`` are H3 hex ids at the index resolution or coarser
        (e.g. from ``cover_cells``); a replaced store's old cells are dropped. The geometry is
        prepared in place. Raises InvalidInput (leaving the index unchanged) on bad input."""
        parsed = self._parse_cells(cells)
        if not isinstance(geometry, Polygon | MultiPolygon) or geometry.is_empty:
            raise InvalidInput(
                "store geometry must be a non-empty Polygon or MultiPolygon", field="geometry"
            )
        shapely.prepare(geometry)
        entry = FenceEntry(store_id, tenant_id, geometry, self._resolution)
        self.remove(store_id)
        self._entries[store_id] = entry
        self._store_cells[store_id] = parsed
        self._reach[store_id] = _bounding_circle(geometry)
        for cell in parsed:
            self._cells.setdefault(cell, {})[store_id] = entry
            self._res_counts[_resolution(cell)] += 1
        for key in _with_ancestors(parsed):
            self._tree.setdefault(key, set()).add(store_id)
        self._refresh_present()
        return entry

    def remove(self, store_id: int) -> bool:
        """Drop a store; False if it was not indexed."""
        if self._entries.pop(store_id, None) is None:
            return False
        del self._reach[store_id]
        cells = self._store_cells.pop(store_id)
        for cell in cells:
            stores = self._cells[cell]
            del stores[store_id]
            if not stores:
                del self._cells[cell]
            self._res_counts[_resolution(cell)] -= 1
        for key in _with_ancestors(cells):
            ids = self._tree[key]
            ids.discard(store_id)
            if not ids:
                del self._tree[key]
        self._refresh_present()
        return True

    def _parse_cells(self, cells: Iterable[str]) -> tuple[int, ...]:
        parsed: set[int] = set()
        for cell in cells:
            if not h3.is_valid_cell(cell):
                raise InvalidInput(f"{cell!r} is not a valid H3 cell id", field="cells")
            value: int = h3.str_to_int(cell)
            if _resolution(value) > self._resolution:
                raise InvalidInput(
                    f"cell {cell} has resolution {_resolution(value)}, finer than the index "
                    f"resolution {self._resolution}",
                    field="cells",
                )
            parsed.add(value)
        if not parsed:
            raise InvalidInput("a store needs at least one H3 cell", field="cells")
        return tuple(sorted(parsed))

    def _refresh_present(self) -> None:
        self._present = tuple(r for r in range(15, -1, -1) if self._res_counts[r])

    # ------------------------------------------------------------------------- queries

    def candidates(self, lat: float, lng: float) -> list[FenceEntry]:
        """Stores whose cover holds the point's cell (superset of ``containing``), by id."""
        _check_point(lat, lng)
        cell: int = h3i.latlng_to_cell(lat, lng, self._resolution)
        base = cell & _RES_CLEAR
        found: dict[int, FenceEntry] = {}
        for res in self._present:
            hit = self._cells.get(base | _RES_SET[res])
            if hit:
                found.update(hit)
        if len(found) > 1:
            return [found[k] for k in sorted(found)]
        return list(found.values())

    def containing(self, lat: float, lng: float) -> list[FenceEntry]:
        """Stores whose fence contains the point (boundary included), ordered by store id."""
        found = self.candidates(lat, lng)
        if not found:
            return found
        inside = shapely.intersects_xy([e.geometry for e in found], lng, lat)  # one ufunc call
        return [e for e, hit in zip(found, inside, strict=True) if hit]

    def nearby(self, lat: float, lng: float, radius_m: float) -> list[tuple[FenceEntry, float]]:
        """Stores whose fence is within ``radius_m`` metres of the point, with that distance
        (0 inside), nearest first (ties by store id)."""
        _check_point(lat, lng)
        if not (math.isfinite(radius_m) and radius_m >= 0):
            raise InvalidInput(
                f"radius {radius_m} m must be a finite number >= 0", field="radius_m"
            )
        near: list[FenceEntry] = []
        for store_id in self._stores_near(lat, lng, radius_m):
            c_lat, c_lng, reach = self._reach[store_id]
            if distance_m(lat, lng, c_lat, c_lng) - reach <= radius_m:  # bounding circle close
                near.append(self._entries[store_id])
        distances = geometry_distances_m([e.geometry for e in near], lat, lng)
        out = [(e, d) for e, d in zip(near, distances, strict=True) if d <= radius_m]
        out.sort(key=lambda pair: (pair[1], pair[0].store_id))
        return out

    def _stores_near(self, lat: float, lng: float, radius_m: float) -> set[int]:
        """Superset of the stores with a covered cell within ``radius_m`` of the point."""
        res, k = _disk(lat, lng, radius_m, self._resolution)
        coarser = [_RES_SET[r] for r in self._present if r < res]
        found: set[int] = set()
        for cell in h3i.grid_disk(h3i.latlng_to_cell(lat, lng, res), k):
            below = self._tree.get(cell)  # stored cells equal to or inside this disk cell
            if below:
                found |= below
            base = cell & _RES_CLEAR
            for res_set in coarser:  # stored cells that are coarser ancestors of it
                hit = self._cells.get(base | res_set)
                if hit:
                    found.update(hit)
        return found


def _bounding_circle(geometry: FenceGeometry) -> tuple[float, float, float]:
    """(lat, lng, metres) of a circle holding the geometry (a 0.1 % + 1 m margin covers the
    curvature of lng/lat edges); infinite for a fence split at the antimeridian."""
    min_x, min_y, max_x, max_y = geometry.bounds
    c_lat, c_lng = (min_y + max_y) / 2, (min_x + max_x) / 2
    if max_x - min_x > 180.0:
        return c_lat, c_lng, math.inf
    reach = max(distance_m(c_lat, c_lng, y, x) for x, y in shapely.get_coordinates(geometry))
    return c_lat, c_lng, reach * 1.001 + 1.0


def _check_point(lat: float, lng: float) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        raise InvalidInput(
            f"point ({lat}, {lng}) is not a valid latitude/longitude", field="location"
        )


def _disk(lat: float, lng: float, radius_m: float, finest: int) -> tuple[int, int]:
    """Resolution and ring count of a grid disk that holds every cell within ``radius_m``.

    Two points ``d`` apart lie in cells whose centres are at most ``d + 2e`` apart, and cells
    ``k`` rings apart have centres at least ``1.5 * e * k`` apart (``e`` the edge length).
    One extra ring allows for a hierarchical parent not containing its child's every point.
    """
    cell = h3i.latlng_to_cell(lat, lng, finest)
    local: float = min(h3i.edge_length(e, "m") for e in h3i.origin_to_directed_edges(cell))
    scale = local * _EDGE_SAFETY / h3.average_hexagon_edge_length(finest, "m")
    res, k = finest, 0
    for res in range(finest, -1, -1):
        edge = scale * h3.average_hexagon_edge_length(res, "m")
        k = math.ceil((radius_m + 2 * edge) / (1.5 * edge)) + 1
        if k <= _MAX_DISK_K:
            break
    return res, k  # at resolution 0 a large k simply yields all 122 base cells

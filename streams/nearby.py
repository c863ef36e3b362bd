"""Nearby mode: which stores are within their promotions' ``nearby_m`` of a point. Pure.

Only stores with a nearby-mode promotion are indexed, each by its fence buffered by the largest
``nearby_m`` of its promotions (a superset: the buffer is at least that many metres in every
direction), in a :class:`~targeting.index.CellIndex` at a coarse resolution. A point lookup
gives candidates; the exact distance to the fence (in metres) decides. This keeps nearby
matching as cheap as a containment lookup instead of a grid-disk search over every store.
"""

from __future__ import annotations

import math

from hexcast.core.errors import InvalidInput
from hexcast.core.logging import get_logger
from targeting import CellIndex, FenceGeometry, cover_cells, geometry_distances_m

__all__ = ["NearIndex"]

log = get_logger("hexcast.matcher.nearby")
_M_PER_DEG = 111_320.0


def _buffered(fence: FenceGeometry, radius_m: float) -> FenceGeometry:
    """``fence`` grown by at least ``radius_m`` metres in every direction (lng/lat degrees)."""
    _, min_y, _, max_y = fence.bounds
    widest = min(89.0, max(abs(min_y), abs(max_y)) + radius_m / _M_PER_DEG)
    grown = fence.buffer(radius_m * 1.01 / (_M_PER_DEG * math.cos(math.radians(widest))))
    return grown  # type: ignore[no-any-return]


class NearIndex:
    def __init__(self, resolution: int) -> None:
        self._index = CellIndex(resolution)
        self._radius: dict[int, float] = {}
        self._fences: dict[int, FenceGeometry] = {}

    def __len__(self) -> int:
        return len(self._radius)

    def put(self, store_id: int, tenant_id: int, fence: FenceGeometry | None, radius_m: float) -> None:
        """Index a store for a radius (0 or no fence: drop it)."""
        if fence is None or radius_m <= 0:
            self._drop(store_id)
            return
        if self._radius.get(store_id) == radius_m and self._fences.get(store_id) is fence:
            return
        grown = _buffered(fence, radius_m)
        try:
            self._index.upsert(store_id, tenant_id, grown,
                               cover_cells(grown, resolution=self._index.resolution))
        except InvalidInput as exc:  # e.g. a buffer across the antimeridian: in-fence only
            log.warning("nearby_unsupported", store_id=store_id, error=str(exc))
            self._drop(store_id)
            return
        self._radius[store_id] = radius_m
        self._fences[store_id] = fence

    def _drop(self, store_id: int) -> None:
        self._index.remove(store_id)
        self._radius.pop(store_id, None)
        self._fences.pop(store_id, None)

    def near(self, lat: float, lng: float, tenant_id: int, skip: set[int]) -> list[tuple[int, float]]:
        """(store, metres to its fence) for the tenant's stores within their radius, but
        outside ``skip`` (the stores whose fence holds the point)."""
        if not self._radius:
            return []
        found = [e.store_id for e in self._index.containing(lat, lng)
                 if e.tenant_id == tenant_id and e.store_id not in skip]
        if not found:
            return []
        distances = geometry_distances_m([self._fences[s] for s in found], lat, lng)
        return [(s, d) for s, d in zip(found, distances, strict=True) if d <= self._radius[s]]

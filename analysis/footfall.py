"""Footfall: visits per H3 cell (roll-ups, GeoJSON, areas) and per store, and store funnels. No I/O.

Visits are placed in stores with the matcher's own index and geofence geometry, so "a visit to
this store" means what it means when the matcher decides to send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h3
from pydantic import TypeAdapter

from hexcast.core.errors import InvalidInput
from targeting import CellIndex, Geofence, distance_m, fence_geometry

__all__ = [
    "StoreFunnel",
    "StoreVisits",
    "cells_geojson",
    "group_by_nearest",
    "rollup",
    "store_funnels",
    "store_index",
    "store_visits",
]

_FENCE = TypeAdapter(Geofence)


def rollup(counts: Mapping[str, int], resolution: int) -> dict[str, int]:
    """Counts per H3 cell summed into their ancestors at a coarser ``resolution``."""
    out: Counter[str] = Counter()
    for cell, n in counts.items():
        res = h3.get_resolution(cell)
        if resolution > res:
            raise InvalidInput(f"cannot roll cell {cell} (resolution {res}) up to {resolution}",
                               field="resolution")
        out[h3.cell_to_parent(cell, resolution)] += n
    return dict(out)


def cells_geojson(counts: Mapping[str, int]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the cells (lng/lat rings) with ``cell`` and ``visits``."""
    features = []
    for cell, n in counts.items():
        ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(cell)]
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
            "properties": {"cell": cell, "visits": n},
        })
    return {"type": "FeatureCollection", "features": features}


def group_by_nearest(
    counts: Mapping[str, int], centres: Mapping[str, tuple[float, float]]
) -> dict[str, dict[str, int]]:
    """Split cell counts by the nearest named centre (lat, lng), e.g. one map panel per metro."""
    if not centres:
        raise InvalidInput("need at least one centre", field="centres")
    out: dict[str, dict[str, int]] = {name: {} for name in centres}
    for cell, n in counts.items():
        lat, lng = h3.cell_to_latlng(cell)
        nearest = min(centres, key=lambda name: distance_m(lat, lng, *centres[name]))
        out[nearest][cell] = n
    return out


def store_index(stores: Iterable[Mapping[str, Any]], *, resolution: int) -> CellIndex:
    """The matcher's index over store rows (id, tenant_id, lat, lng, geofence, cells)."""
    index = CellIndex(resolution)
    for s in stores:
        geometry = fence_geometry(_FENCE.validate_python(s["geofence"]), lat=s["lat"], lng=s["lng"])
        index.upsert(s["id"], s["tenant_id"], geometry, s["cells"])
    return index


@dataclass(frozen=True, slots=True)
class StoreVisits:
    visits: int
    visitors: int


def store_visits(index: CellIndex, points: Iterable[tuple[str, float, float]]) -> dict[int, StoreVisits]:
    """Visits and distinct visitors inside each store's fence, from (user id, lat, lng)."""
    visits: Counter[int] = Counter()
    visitors: dict[int, set[str]] = {}
    for user, lat, lng in points:
        for entry in index.containing(lat, lng):
            visits[entry.store_id] += 1
            visitors.setdefault(entry.store_id, set()).add(user)
    return {sid: StoreVisits(n, len(visitors[sid])) for sid, n in visits.items()}


@dataclass(frozen=True, slots=True)
class StoreFunnel:
    """visit → SMS → delivered → click for one store; clicks are None without click data."""

    store_id: int
    name: str
    visits: int
    visitors: int
    messages: int
    delivered: int
    clicks: int | None

    @property
    def sms_per_visit(self) -> float:
        return self.messages / self.visits if self.visits else 0.0

    @property
    def delivered_per_visit(self) -> float:
        return self.delivered / self.visits if self.visits else 0.0

    @property
    def clicks_per_delivered(self) -> float | None:
        if self.clicks is None:
            return None
        return self.clicks / self.delivered if self.delivered else 0.0


def store_funnels(
    stores: Sequence[Mapping[str, Any]],
    visits: Mapping[int, StoreVisits],
    promotion_store: Mapping[int, int],
    outcomes: Mapping[int, Mapping[str, int]],
    clicks: Mapping[int, int] | None,
) -> list[StoreFunnel]:
    """One funnel per store: ``outcomes`` and ``clicks`` are per promotion, ``promotion_store``
    maps a promotion to its store."""
    messages: Counter[int] = Counter()
    delivered: Counter[int] = Counter()
    clicked: Counter[int] = Counter()
    for promo, states in outcomes.items():
        store = promotion_store[promo]
        messages[store] += sum(states.values())
        delivered[store] += states.get("delivered", 0)
        clicked[store] += (clicks or {}).get(promo, 0)
    empty = StoreVisits(0, 0)
    return [
        StoreFunnel(
            store_id=s["id"], name=s["name"], visits=visits.get(s["id"], empty).visits,
            visitors=visits.get(s["id"], empty).visitors, messages=messages[s["id"]],
            delivered=delivered[s["id"]], clicks=None if clicks is None else clicked[s["id"]],
        )
        for s in stores
    ]

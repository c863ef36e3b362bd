"""Targeting: stores, geofences on H3, promotions, recipients and segments.

What other domains may use is exported here (``__all__``); they import nothing else of
targeting (``tests/unit/test_layers.py`` checks it)."""

from targeting.geofence import (
    FenceGeometry,
    Geofence,
    cover_cells,
    distance_m,
    fence_geometry,
    geometry_distances_m,
)
from targeting.index import CellIndex
from targeting.models import (
    CatalogRecord,
    Name,
    ProfileRecord,
    PromotionEntry,
    unset_default,
    validate_time_zone,
)
from targeting.segments import MAX_USER_IDS, SegmentDefinition, audience_query, zone_counts_query
from targeting.service import InterestFit, Wanted, fit_score

__all__ = [
    "MAX_USER_IDS",
    "CatalogRecord",
    "CellIndex",
    "FenceGeometry",
    "Geofence",
    "InterestFit",
    "Name",
    "ProfileRecord",
    "PromotionEntry",
    "SegmentDefinition",
    "Wanted",
    "audience_query",
    "cover_cells",
    "distance_m",
    "fence_geometry",
    "fit_score",
    "geometry_distances_m",
    "unset_default",
    "validate_time_zone",
    "zone_counts_query",
]

"""Pure logic of the catalog: geofences to cells, rows to records and public schemas."""

from __future__ import annotations

from typing import Any

from targeting.geofence import cover_cells, fence_geometry
from targeting.models import (
    CatalogRecord,
    ProfileRecord,
    PromotionEntry,
    PromotionPublic,
    RecipientPublic,
    StoreCreate,
    StoreEntry,
    StorePublic,
)

__all__ = [
    "fence_cells",
    "interest_match",
    "profile_record",
    "promotion_public",
    "promotion_record",
    "recipient_public",
    "store_public",
    "store_record",
]


def fence_cells(store: StoreCreate, *, resolution: int) -> list[str]:
    """Validate the store's geofence and cover it with compacted H3 cells."""
    geometry = fence_geometry(store.geofence, lat=store.lat, lng=store.lng)
    return cover_cells(geometry, resolution=resolution)


def store_public(row: Any) -> StorePublic:
    return StorePublic(
        id=row["id"], name=row["name"], lat=row["lat"], lng=row["lng"],
        time_zone=row["time_zone"], geofence=row["geofence"], cell_count=len(row["cells"]),
        h3_resolution=row["h3_resolution"], active=row["active"], created_at=row["created_at"],
    )


def store_record(row: Any) -> CatalogRecord:
    entry = StoreEntry(
        lat=row["lat"], lng=row["lng"], time_zone=row["time_zone"],
        geofence=row["geofence"], cells=list(row["cells"]),
    )
    return CatalogRecord(
        kind="store", id=row["id"], tenant_id=row["tenant_id"], active=row["active"], store=entry
    )


def promotion_public(row: Any) -> PromotionPublic:
    return PromotionPublic(
        id=row["id"], store_id=row["store_id"], name=row["name"], body=row["body"],
        interests=list(row["interests"]), valid_from=row["valid_from"],
        valid_until=row["valid_until"], active=row["active"], created_at=row["created_at"],
    )


def promotion_record(row: Any) -> CatalogRecord:
    entry = PromotionEntry(
        store_id=row["store_id"], body=row["body"], interests=list(row["interests"]),
        valid_from=row["valid_from"], valid_until=row["valid_until"],
    )
    return CatalogRecord(
        kind="promotion", id=row["id"], tenant_id=row["tenant_id"], active=row["active"],
        promotion=entry,
    )


def recipient_public(row: Any) -> RecipientPublic:
    return RecipientPublic(
        id=row["id"], user_id=row["user_id"], phone=row["phone"], time_zone=row["time_zone"],
        interests=list(row["interests"]), consent=row["consent"], opted_out=row["opted_out"],
        created_at=row["created_at"],
    )


def profile_record(row: Any) -> ProfileRecord:
    return ProfileRecord(
        tenant_id=row["tenant_id"], user_id=row["user_id"], phone=row["phone"],
        time_zone=row["time_zone"], interests=list(row["interests"]), consent=row["consent"],
        opted_out=row["opted_out"],
    )


def interest_match(promotion_interests: list[str], user_interests: list[str]) -> bool:
    """True when the promotion targets everyone, or a user interest is an ancestor or equal.

    ``electronics/phones`` matches a user interested in ``electronics`` (and vice versa a
    promotion for ``electronics`` matches a user interested in ``electronics/phones``).
    """
    if not promotion_interests:
        return True
    for wanted in promotion_interests:
        for have in user_interests:
            if wanted == have or wanted.startswith(have + "/") or have.startswith(wanted + "/"):
                return True
    return False


"""Segments: who a campaign targets. The one place segment SQL is built. Pure: no I/O.

A :class:`SegmentDefinition` becomes a parameterised ``WHERE`` clause over ``recipients r``
(:func:`build_where`); :func:`audience_query`, :func:`zone_counts_query` and
:func:`holdout_expr` wrap it for keyset-paginated release, previews and the control group.
The scheduler, the preview endpoint and the notebooks all call these, so they agree.

Recipients without a time zone belong to the campaign's zone (``fallback_zone``).
Geography: ``h3_cells`` match recipients whose stored cell or one of its ancestors is listed;
``polygon`` is covered by H3 cells ("overlap", so it may include a sliver outside the edge);
``near_stores`` is a great-circle distance from the tenant's own stores. Recency uses the
later of ``recipients.last_visit_at`` (imports) and the archived ``visits`` history.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

import h3
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hexcast.core.errors import InvalidInput
from hexcast.core.ids import DbId
from hexcast.core.pgtext import PG_TEXT, PgText
from targeting.geofence import MultiPolygonFence, PolygonFence, cover_cells, fence_geometry
from targeting.models import validate_time_zone

__all__ = [
    "CELL_MIN_RES",
    "MAX_USER_IDS",
    "Interest",
    "NearStores",
    "SegmentCriteria",
    "SegmentDefinition",
    "SqlParams",
    "audience_query",
    "build_where",
    "cell_ancestors",
    "holdout_basis_points",
    "holdout_expr",
    "is_holdout",
    "zone_counts_query",
    "zone_expr",
]

CELL_MIN_RES = 3
"""Coarsest H3 resolution stored on recipients (their cell and its ancestors down to this)."""
_MAX_SEGMENT_CELLS = 50_000
MAX_USER_IDS = 10_000
"""Most user ids an explicit ``user_ids`` segment lists (e.g. one analysed cluster)."""
Interest = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[a-z0-9_-]+(/[a-z0-9_-]+)*$"),
                     PG_TEXT]


class NearStores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store_ids: Annotated[list[DbId], Field(min_length=1, max_length=500)]
    radius_km: Annotated[float, Field(gt=0, le=500, allow_inf_nan=False)]


class SegmentCriteria(BaseModel):
    """Filters that all must hold (AND). Interests are hierarchical: ``electronics`` matches
    a recipient interested in ``electronics/phones``."""

    model_config = ConfigDict(extra="forbid")

    interests_any: list[Interest] = Field(default_factory=list, max_length=100)
    interests_all: list[Interest] = Field(default_factory=list, max_length=20)
    time_zones: list[PgText] = Field(default_factory=list, max_length=600)
    h3_cells: list[PgText] = Field(default_factory=list, max_length=10_000)
    polygon: PolygonFence | MultiPolygonFence | None = None
    near_stores: NearStores | None = None
    visited_within_days: Annotated[int | None, Field(ge=1, le=3650)] = None
    not_visited_within_days: Annotated[int | None, Field(ge=1, le=3650)] = None
    user_ids: list[Annotated[str, Field(min_length=1, max_length=128), PG_TEXT]] = Field(
        default_factory=list, max_length=MAX_USER_IDS
    )

    @field_validator("time_zones")
    @classmethod
    def _zones(cls, values: list[str]) -> list[str]:
        return [validate_time_zone(v) for v in values]

    @field_validator("h3_cells")
    @classmethod
    def _cells(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            cell = value.lower()
            if not h3.is_valid_cell(cell) or h3.get_resolution(cell) < CELL_MIN_RES:
                raise ValueError(f"{value!r} is not an H3 cell of resolution {CELL_MIN_RES} or finer")
            out.append(cell)
        return out

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in SegmentCriteria.model_fields)


class SegmentDefinition(SegmentCriteria):
    """A campaign's audience: the criteria, minus ``exclude``, with an optional holdout.

    At least one criterion is required; ``everyone: true`` targets every consenting recipient.
    """

    everyone: bool = False
    require_consent: bool = True
    exclude: SegmentCriteria | None = None
    holdout_pct: Annotated[float, Field(ge=0, le=50, allow_inf_nan=False)] = 0.0

    @model_validator(mode="after")
    def _not_empty(self) -> SegmentDefinition:
        if not self.everyone and SegmentCriteria.is_empty(self):
            raise ValueError("segment is empty: give at least one criterion or everyone: true")
        return self


class SqlParams:
    """Collects positional parameters; ``add`` returns the ``$n`` placeholder."""

    def __init__(self, start: int = 1) -> None:
        self.values: list[Any] = []
        self._start = start

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${self._start + len(self.values) - 1}"


def cell_ancestors(lat: float, lng: float, resolution: int) -> list[str]:
    """The recipient's cell at ``resolution`` and its parents down to :data:`CELL_MIN_RES`."""
    cell = h3.latlng_to_cell(lat, lng, resolution)
    return [h3.cell_to_parent(cell, res) for res in range(CELL_MIN_RES, resolution + 1)]


def _polygon_cells(fence: PolygonFence | MultiPolygonFence, resolution: int) -> list[str]:
    geom = fence_geometry(fence, lat=0.0, lng=0.0)
    cells = cover_cells(geom, resolution=resolution, max_cells=_MAX_SEGMENT_CELLS * 7)
    out: list[str] = []
    for cell in cells:  # compacted cells coarser than the stored range are expanded
        res = h3.get_resolution(cell)
        out.extend(h3.cell_to_children(cell, CELL_MIN_RES) if res < CELL_MIN_RES else [cell])
    if len(out) > _MAX_SEGMENT_CELLS:
        raise InvalidInput("segment polygon is too large", field="segment.polygon")
    return out


def _interest_match(p: SqlParams, interests: list[str]) -> str:
    """SQL true if the recipient has one of ``interests`` or a sub-interest of one."""
    prefixes = [i.replace("_", "\\_") + "/%" for i in interests]
    return (f"EXISTS (SELECT 1 FROM unnest(r.interests) AS i(x) WHERE i.x = ANY({p.add(interests)}"
            f"::text[]) OR i.x LIKE ANY({p.add(prefixes)}::text[]))")


def zone_expr(p: SqlParams, fallback_zone: str) -> str:
    return f"COALESCE(r.time_zone, {p.add(fallback_zone)})"


def _geo_clauses(c: SegmentCriteria, p: SqlParams, resolution: int) -> list[str]:
    out: list[str] = []
    if c.h3_cells:
        out.append(f"r.h3_cells && {p.add(c.h3_cells)}::text[]")
    if c.polygon is not None:
        out.append(f"r.h3_cells && {p.add(_polygon_cells(c.polygon, resolution))}::text[]")
    if c.near_stores is not None:
        ids, km = p.add(c.near_stores.store_ids), p.add(c.near_stores.radius_km)
        out.append(
            "EXISTS (SELECT 1 FROM stores s WHERE s.tenant_id = r.tenant_id"
            f" AND s.id = ANY({ids}::bigint[]) AND r.lat IS NOT NULL AND 2 * 6371.0088 * asin(sqrt("
            "power(sin(radians(s.lat - r.lat) / 2), 2) + cos(radians(r.lat)) * cos(radians(s.lat))"
            f" * power(sin(radians(s.lng - r.lng) / 2), 2))) <= {km})"
        )
    return out


# The latest of the imported last visit and the archived visit history (``visits``).
_LAST_VISIT = (
    "GREATEST(r.last_visit_at, (SELECT max(v.ts) FROM visits v"
    " WHERE v.tenant_id = r.tenant_id AND v.user_id = r.user_id))"
)


def _criteria(
    c: SegmentCriteria, p: SqlParams, *, fallback_zone: str, as_of: datetime, resolution: int
) -> list[str]:
    out: list[str] = []
    if c.interests_any:
        out.append(_interest_match(p, c.interests_any))
    out.extend(_interest_match(p, [one]) for one in c.interests_all)
    if c.time_zones:
        out.append(f"{zone_expr(p, fallback_zone)} = ANY({p.add(c.time_zones)}::text[])")
    out.extend(_geo_clauses(c, p, resolution))
    if c.visited_within_days is not None:
        out.append(f"{_LAST_VISIT} >= {p.add(as_of)}::timestamptz"
                   f" - make_interval(days => {p.add(c.visited_within_days)}::int)")
    if c.not_visited_within_days is not None:
        out.append(f"({_LAST_VISIT} IS NULL OR {_LAST_VISIT} < {p.add(as_of)}::timestamptz"
                   f" - make_interval(days => {p.add(c.not_visited_within_days)}::int))")
    if c.user_ids:
        out.append(f"r.user_id = ANY({p.add(c.user_ids)}::text[])")
    return out


def build_where(
    segment: SegmentDefinition, p: SqlParams, *, tenant_id: int, fallback_zone: str,
    as_of: datetime, resolution: int,
) -> str:
    """The ``WHERE`` body selecting the segment's recipients (holdout included)."""
    clauses = [f"r.tenant_id = {p.add(tenant_id)}", "r.opted_out_at IS NULL"]
    if segment.require_consent:
        clauses.append("r.consent_at IS NOT NULL")
    kw: dict[str, Any] = {"fallback_zone": fallback_zone, "as_of": as_of, "resolution": resolution}
    clauses.extend(_criteria(segment, p, **kw))
    if segment.exclude is not None and not segment.exclude.is_empty():
        excluded = _criteria(segment.exclude, p, **kw)
        clauses.append("NOT (" + " AND ".join(excluded) + ")")
    return " AND ".join(clauses)


def holdout_basis_points(pct: float) -> int:
    return round(pct * 100)


def holdout_expr(p: SqlParams, *, campaign_id: int, pct: float) -> str:
    """SQL boolean: the recipient is in the campaign's control group (see :func:`is_holdout`)."""
    if pct <= 0:
        return "false"
    return (f"(('x' || substr(md5({p.add(str(campaign_id))} || ':' || r.id::text), 1, 8))"
            f"::bit(32)::bigint % 10000) < {p.add(holdout_basis_points(pct))}")


def is_holdout(*, campaign_id: int, recipient_id: int, pct: float) -> bool:
    """Deterministic per (campaign, recipient): the same answer as :func:`holdout_expr`."""
    digest = hashlib.md5(f"{campaign_id}:{recipient_id}".encode(), usedforsecurity=False)
    return int(digest.hexdigest()[:8], 16) % 10000 < holdout_basis_points(pct)


def audience_query(
    segment: SegmentDefinition, *, tenant_id: int, campaign_id: int, fallback_zone: str,
    as_of: datetime, resolution: int, zone: str | None, after_id: int, limit: int,
) -> tuple[str, list[Any]]:
    """One keyset page (by recipient id) of the segment, optionally one zone only."""
    p = SqlParams()
    where = build_where(segment, p, tenant_id=tenant_id, fallback_zone=fallback_zone,
                        as_of=as_of, resolution=resolution)
    if zone is not None:
        where += f" AND {zone_expr(p, fallback_zone)} = {p.add(zone)}"
    held = holdout_expr(p, campaign_id=campaign_id, pct=segment.holdout_pct)
    sql = (
        "SELECT r.id, r.user_id, r.phone, r.first_name, r.last_name,"
        f" {zone_expr(p, fallback_zone)} AS time_zone, {held} AS holdout"
        f" FROM recipients r WHERE {where} AND r.id > {p.add(after_id)}"
        f" ORDER BY r.id LIMIT {p.add(limit)}"
    )
    return sql, p.values


def zone_counts_query(
    segment: SegmentDefinition, *, tenant_id: int, campaign_id: int, fallback_zone: str,
    as_of: datetime, resolution: int,
) -> tuple[str, list[Any]]:
    """Audience and holdout counts per time zone."""
    p = SqlParams()
    where = build_where(segment, p, tenant_id=tenant_id, fallback_zone=fallback_zone,
                        as_of=as_of, resolution=resolution)
    held = holdout_expr(p, campaign_id=campaign_id, pct=segment.holdout_pct)
    sql = (
        f"SELECT {zone_expr(p, fallback_zone)} AS time_zone, count(*) AS audience,"
        f" count(*) FILTER (WHERE {held}) AS holdout FROM recipients r WHERE {where}"
        " GROUP BY 1 ORDER BY 1"
    )
    return sql, p.values

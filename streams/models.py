"""Visit events: what the apps post, and the record the API publishes on ``visits``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hexcast.core.pgtext import PG_TEXT, PgText
from hexcast.core.wire import WireRecord

__all__ = ["MAX_BATCH", "VisitBatchIn", "VisitEvent", "VisitIn", "VisitRecord", "VisitsAccepted"]

MAX_BATCH = 1000
_MAX_FUTURE = timedelta(minutes=5)
_MAX_AGE = timedelta(days=7)


class VisitIn(BaseModel):
    """One location-visit event as posted by a mobile app."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$"), PG_TEXT]
    user_id: Annotated[str, Field(min_length=1, max_length=128), PG_TEXT]
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lng: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    accuracy_m: Annotated[float, Field(ge=0.01, le=5000, allow_inf_nan=False)] = 20.0
    """Metres; at least 1 cm: the history column is a ``real``, where 5e-324 underflowed."""
    ts: datetime

    @field_validator("ts")
    @classmethod
    def _ts_window(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("ts must carry a time-zone offset (e.g. 2026-11-27T18:00:00Z)")
        now = datetime.now(UTC)
        if value > now + _MAX_FUTURE:
            raise ValueError("ts is more than 5 minutes in the future")
        if value < now - _MAX_AGE:
            raise ValueError("ts is more than 7 days old")
        return value.astimezone(UTC)


class VisitBatchIn(BaseModel):
    """A device's batch of events, as mobile SDKs post them."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[VisitIn], Field(min_length=1, max_length=MAX_BATCH)]


class VisitsAccepted(BaseModel):
    accepted: int
    records: int


class VisitEvent(BaseModel):
    """A validated event inside a :class:`VisitRecord`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The text rule and VisitIn's ranges again: any producer may write to ``visits``, and a
    # NUL, a lone surrogate or a latitude of 1,000 must cost only its own event.
    event_id: PgText
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lng: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    accuracy_m: Annotated[float, Field(ge=0.01, le=5000, allow_inf_nan=False)]
    ts: datetime


class VisitRecord(WireRecord):
    """Topic ``visits``, key = ``<tenant>:<user>``: one user's events from one post."""

    ITEMS = "events"
    ITEM_NAME = "event_id"

    tenant_id: int
    user_id: PgText
    events: list[VisitEvent]
    received_at: datetime

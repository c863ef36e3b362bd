"""Stores, promotions and recipients: API schemas and the records on ``catalog``/``profiles``."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from hexcast.core.ids import DbId
from hexcast.core.instants import PastInstant, WallClock
from hexcast.core.pgtext import PG_TEXT, PgText
from hexcast.core.wire import WireRecord
from targeting.geofence import Geofence

__all__ = [
    "CatalogRecord",
    "ConsentIn",
    "DailyHours",
    "INT_MAX",
    "Name",
    "ProfileRecord",
    "PromotionCreate",
    "PromotionEntry",
    "PromotionPolicy",
    "PromotionPublic",
    "RecipientCreate",
    "RecipientPublic",
    "RecipientUpdate",
    "StoreCreate",
    "StoreEntry",
    "StorePublic",
    "normalize_phone",
    "unset_default",
    "validate_time_zone",
]

_INTEREST = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+)*$")
Interest = Annotated[str, Field(min_length=1, max_length=80), PG_TEXT]
Name = Annotated[str, Field(min_length=1, max_length=200), PG_TEXT]
INT_MAX = 2**31 - 1
"""PostgreSQL ``integer``: a larger count is a 422 naming the field, not a driver error."""


def unset_default(schema: JsonDict) -> None:
    """The JSON schema of a PATCH field one may leave out but not set to null: its placeholder
    default is not documented (it is never read: a PATCH takes only the fields it names)."""
    schema.pop("default", None)


def validate_time_zone(value: str) -> str:
    """An IANA zone name, or ValueError naming it."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a directory, a long name too long
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name like America/Chicago)"
        ) from None
    return value


def normalize_phone(value: str) -> str:
    """E.164 form of a valid number, or ValueError."""
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"phone {value!r} is not an E.164 number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"phone {value!r} is not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _check_interests(values: list[str]) -> list[str]:
    for item in values:
        if not _INTEREST.match(item):
            raise ValueError(
                f"interest {item!r} must be lowercase path segments like 'electronics/phones'"
            )
    return sorted(set(values))


class StoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lng: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    time_zone: PgText
    geofence: Geofence
    accuracy_max_m: Annotated[float, Field(ge=1, le=5000, allow_inf_nan=False)] = 100.0
    """Visit events reporting a worse GPS accuracy are ignored for this store (and counted).
    At least 1 m: the column is a ``real`` (a tiny positive double such as 5e-324 became 0
    there and broke its check), and no phone reports better."""

    _tz = field_validator("time_zone")(validate_time_zone)


class StorePublic(BaseModel):
    id: int
    name: str
    lat: float
    lng: float
    time_zone: str
    geofence: dict[str, Any]
    cell_count: int
    h3_resolution: int
    accuracy_max_m: float
    active: bool
    created_at: AwareDatetime


class DailyHours(BaseModel):
    """A daily window in the store's local time; ``end`` before ``start`` wraps past midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: WallClock
    end: WallClock

    @model_validator(mode="after")
    def _window(self) -> DailyHours:
        if self.start == self.end:
            raise ValueError("hours.start and hours.end are equal (leave hours out for all day)")
        return self

    def contains(self, at: time) -> bool:
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end


Weekday = Annotated[int, Field(ge=1, le=7)]
ALL_WEEKDAYS = [1, 2, 3, 4, 5, 6, 7]


class PromotionPolicy(BaseModel):
    """When and how often a promotion may be sent; shared by the API schemas and the catalog."""

    hours: DailyHours | None = None
    weekdays: Annotated[list[Weekday], Field(min_length=1, max_length=7)] = Field(
        default_factory=lambda: list(ALL_WEEKDAYS), description="ISO weekdays, 1 = Monday."
    )
    trigger: Literal["entry", "dwell"] = "entry"
    dwell_minutes: Annotated[int | None, Field(ge=1, le=720)] = None
    max_gap_minutes: Annotated[int, Field(ge=1, le=720)] = 30
    nearby_m: Annotated[int, Field(ge=0, le=5000)] = 0
    cooldown_minutes: Annotated[int, Field(ge=0, le=525_600)] = 1440
    budget: Annotated[int | None, Field(ge=1, le=INT_MAX)] = None
    interest_weights: dict[Interest, Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("weekdays has duplicates")
        return sorted(value)

    @model_validator(mode="after")
    def _trigger(self) -> PromotionPolicy:
        if self.trigger == "dwell" and self.dwell_minutes is None:
            raise ValueError("dwell_minutes is required when trigger is 'dwell'")
        if self.trigger == "entry" and self.dwell_minutes is not None:
            raise ValueError("dwell_minutes is only allowed when trigger is 'dwell'")
        return self


class PromotionCreate(PromotionPolicy):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    store_id: DbId
    name: Name
    body: Annotated[str, Field(min_length=1, max_length=1600), PG_TEXT]
    interests: list[Interest] = Field(default_factory=list, max_length=50)
    valid_from: date | None = None
    valid_until: date | None = None

    _interests = field_validator("interests")(_check_interests)

    @model_validator(mode="after")
    def _dates(self) -> PromotionCreate:
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        unknown = sorted(set(self.interest_weights) - set(self.interests))
        if unknown:
            raise ValueError(f"interest_weights names interests not in interests: {unknown}")
        return self


class PromotionPublic(PromotionPolicy):
    id: int
    store_id: int
    name: str
    body: str
    interests: list[str]
    valid_from: date | None
    valid_until: date | None
    active: bool
    created_at: AwareDatetime


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: PastInstant
    source: Name
    text: Annotated[str, Field(min_length=1, max_length=2000), PG_TEXT]


class RecipientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: Annotated[str, Field(min_length=1, max_length=128), PG_TEXT]
    phone: PgText
    time_zone: PgText | None = None
    interests: list[Interest] = Field(default_factory=list, max_length=100)
    consent: ConsentIn | None = None

    _phone = field_validator("phone")(normalize_phone)
    _interests = field_validator("interests")(_check_interests)

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else validate_time_zone(value)


class RecipientUpdate(BaseModel):
    """What may change on a recipient (``PATCH``); ``"consent": null`` withdraws consent and
    ``"time_zone": null`` removes the zone. ``phone`` and ``interests`` cannot be null (their
    columns are NOT NULL; ``[]`` clears the interests): null is a 422 naming them. A field left
    out keeps a placeholder default, never read (:meth:`columns` takes the fields named)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: PgText = Field(default="", json_schema_extra=unset_default)
    time_zone: PgText | None = None
    interests: list[Interest] = Field(default_factory=list, max_length=100, json_schema_extra=unset_default)
    consent: ConsentIn | None = None

    _phone = field_validator("phone")(normalize_phone)
    _interests = field_validator("interests")(_check_interests)

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else validate_time_zone(value)

    @model_validator(mode="after")
    def _something(self) -> RecipientUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give phone, time_zone, interests or consent")
        return self

    def columns(self) -> dict[str, Any]:
        """Column → new value, for the fields the request named."""
        out: dict[str, Any] = {}
        fields = self.model_fields_set
        for name in ("phone", "time_zone", "interests"):
            if name in fields:
                out[name] = getattr(self, name)
        if "consent" in fields:
            c = self.consent
            out.update(consent_at=c.at if c else None, consent_source=c.source if c else None,
                       consent_text=c.text if c else None)
        return out


class RecipientPublic(BaseModel):
    id: int
    user_id: str
    phone: str
    time_zone: str | None
    interests: list[str]
    consent: bool
    opted_out: bool
    created_at: AwareDatetime


class StoreEntry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    lat: float
    lng: float
    time_zone: str
    geofence: dict[str, Any]
    cells: list[str]
    accuracy_max_m: float = 100.0


class PromotionEntry(PromotionPolicy):
    model_config = ConfigDict(extra="ignore", frozen=True)

    store_id: int
    body: str
    interests: list[str]
    valid_from: date | None
    valid_until: date | None


class CatalogRecord(WireRecord):
    """Topic ``catalog`` (compacted), key ``store:<id>`` or ``promotion:<id>``."""

    kind: Literal["store", "promotion"]
    id: int
    tenant_id: int
    active: bool
    store: StoreEntry | None = None
    promotion: PromotionEntry | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


class ProfileRecord(WireRecord):
    """Topic ``profiles`` (compacted), key ``<tenant>:<user>``: what the matcher needs."""

    tenant_id: int
    user_id: str
    phone: str
    time_zone: str | None
    interests: list[str]
    consent: bool
    opted_out: bool

    @property
    def key(self) -> str:
        return f"{self.tenant_id}:{self.user_id}"

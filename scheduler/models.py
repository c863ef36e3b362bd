"""Campaign API schemas: templates, campaigns, previews, runs and stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from hexcast.core.errors import InvalidInput
from hexcast.core.ids import DbId
from hexcast.core.instants import WallClock, WallTime
from hexcast.core.pgtext import PgText
from scheduler.timing import localize, next_cron_wall, validate_cron, wall_clock
from sender import Lane, validate_template
from targeting import Name, SegmentDefinition, unset_default, validate_time_zone

__all__ = [
    "MIN_RATE",
    "PLACEHOLDER_FIELDS",
    "CampaignCreate",
    "CampaignPublic",
    "CampaignStats",
    "CampaignUpdate",
    "PreviewPublic",
    "PreviewRequest",
    "QuietHoursIn",
    "RunPublic",
    "RunStats",
    "TemplateCreate",
    "TemplatePublic",
    "TimeMode",
    "WavePublic",
    "ZonePreview",
    "check_body",
    "run_clock",
]

#: Recipient fields a template may use as ``{name}``.
PLACEHOLDER_FIELDS = ("first_name", "last_name", "user_id", "time_zone")
MIN_RATE = 0.01
"""The slowest pace a campaign may ask for (messages/s): a smaller one (5e-324 passed ``> 0``)
put a wave's forecast finish beyond the calendar, and the preview answered 500."""
TimeMode = Literal["fixed", "recipient_local"]
Body = Annotated[PgText, Field(min_length=1, max_length=1600)]


def check_body(body: str) -> str:
    """The template text, or ValueError naming the first unknown placeholder."""
    try:
        validate_template(body, PLACEHOLDER_FIELDS)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    return body


class TemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    body: Body

    _body = field_validator("body")(check_body)


class TemplatePublic(BaseModel):
    id: int
    name: str
    body: str
    placeholders: list[str]
    encoding: str
    segments: int
    created_at: AwareDatetime


_LAST_ZONE_BEHIND = timedelta(hours=12)
"""Etc/GMT+12 (Baker Island): the last wall clock to reach any given time of day."""
_FIRST_YEAR, _LAST_YEAR = 1970, 9998
"""Wall times and instants that every zone can convert (year 9999 plus 12 hours overflowed)."""


def _naive(value: datetime | None, zone: str) -> datetime | None:
    """Wall time in ``zone``: aware values are converted, naive ones are taken as wall times."""
    if value is None or value.tzinfo is None:
        return value
    return wall_clock(value, ZoneInfo(zone))


class CampaignCreate(BaseModel):
    """A cron (``cron``) or one-shot (``run_at``) campaign. ``run_at`` and ``deadline`` are wall
    times in ``time_zone`` (fixed mode) or in each recipient's own zone (recipient_local)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    template_id: DbId | None = None
    body: Body | None = None
    segment: SegmentDefinition
    cron: PgText | None = None
    run_at: datetime | None = None
    time_zone: PgText
    time_mode: TimeMode = "fixed"
    deadline: datetime | None = None
    max_rate: Annotated[float | None, Field(ge=MIN_RATE, le=1_000_000, allow_inf_nan=False)] = None
    lane: Lane = Lane.BULK

    _tz = field_validator("time_zone")(validate_time_zone)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else validate_cron(value)

    @field_validator("run_at", "deadline")
    @classmethod
    def _years(cls, value: datetime | None) -> datetime | None:
        if value is not None and not _FIRST_YEAR <= value.year <= _LAST_YEAR:
            raise ValueError(f"must be between the years {_FIRST_YEAR} and {_LAST_YEAR}")
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: str | None) -> str | None:
        return None if value is None else check_body(value)

    @field_validator("lane")
    @classmethod
    def _lane(cls, value: Lane) -> Lane:
        if value in (Lane.OTP, Lane.TRANSACTIONAL):  # marketing: consent, never exempt
            raise ValueError(f"campaigns cannot use the {value.value} lane")
        return value

    @model_validator(mode="after")
    def _shape(self) -> CampaignCreate:
        if (self.cron is None) == (self.run_at is None):
            raise ValueError("give exactly one of cron or run_at")
        if (self.template_id is None) == (self.body is None):
            raise ValueError("give exactly one of template_id or body")
        self.run_at = _naive(self.run_at, self.time_zone)
        self.deadline = _naive(self.deadline, self.time_zone)
        if self.deadline is not None and self.deadline <= self.first_wall():
            raise ValueError("deadline: must be after the first scheduled start")
        return self

    def first_wall(self) -> datetime:
        """The first scheduled wall time (for validation and previews)."""
        if self.run_at is not None:
            return self.run_at
        now = wall_clock(datetime.now(UTC), ZoneInfo(self.time_zone))
        return next_cron_wall(self.cron or "", now)

    def first_instant(self) -> datetime:
        return localize(self.first_wall(), ZoneInfo(self.time_zone))

    def last_start(self) -> datetime:
        """When the first scheduled start has come everywhere it applies: in the campaign's
        zone (fixed), or in the last zone on Earth to reach that wall time, UTC−12
        (recipient_local)."""
        if self.time_mode == "recipient_local":
            return self.first_wall().replace(tzinfo=UTC) + _LAST_ZONE_BEHIND
        return self.first_instant()


class CampaignUpdate(BaseModel):
    """What may change on a campaign (see ``PATCH /v1/campaigns/{id}``); ``"max_rate": null``
    removes the cap. ``name`` and ``body`` cannot be null (their columns are NOT NULL): null is
    a 422 naming them. A field left out keeps a placeholder default, never read (see
    :meth:`columns`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name = Field(default="", json_schema_extra=unset_default)
    max_rate: Annotated[float, Field(ge=MIN_RATE, le=1_000_000, allow_inf_nan=False)] | None = None
    body: Body = Field(default="", json_schema_extra=unset_default)

    _body = field_validator("body")(check_body)

    def columns(self) -> dict[str, Any]:
        """Column → new value, for the fields the request named."""
        return self.model_dump(include=self.model_fields_set)


class CampaignPublic(BaseModel):
    id: int
    name: str
    template_id: int | None
    body: str
    segment: dict[str, Any]
    cron: str | None
    run_at: AwareDatetime | None = Field(description=(
        "A fixed-mode one-shot's start as an instant, at the campaign zone's offset; null for"
        " cron campaigns and in recipient_local mode (see run_at_local)"))
    run_at_local: WallTime | None = Field(description=(
        "A one-shot's start as a wall time: in time_zone (fixed) or in each recipient's own"
        " zone (recipient_local)"))
    time_zone: str
    time_mode: TimeMode
    deadline: AwareDatetime | None = Field(description=(
        "The fixed-mode deadline as an instant, at the campaign zone's offset; null without a"
        " deadline and in recipient_local mode (see deadline_local)"))
    deadline_local: WallTime | None = Field(description=(
        "The deadline as a wall time, in time_zone (fixed) or in each recipient's zone"))
    max_rate: float | None
    lane: Lane
    state: str
    created_at: AwareDatetime


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: WallClock = Field(description="Local time quiet hours begin, e.g. 21:00")
    end: WallClock = Field(description="Local time they end, e.g. 08:00 (may wrap midnight)")


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quiet_hours: QuietHoursIn | None = Field(
        default=None, description="Forecast with no sending in these local hours"
    )


class ZonePreview(BaseModel):
    time_zone: str
    audience: int
    holdout: int
    sendable: int
    starts_at: AwareDatetime | None = None
    finishes_at: AwareDatetime | None = None
    deadline_at: AwareDatetime | None = None


_SCHEDULED_FOR = "When the run starts: its first wave fires (recipient_local: in the earliest zone)"
_LOCAL_TIME = "The run's wall time, in time_zone"
_TIME_ZONE = "The zone of local_time; null in recipient_local mode (each recipient's own zone)"


def run_clock(*, time_mode: str, time_zone: str, wall: datetime, first_fire_at: datetime
              ) -> tuple[datetime, str | None]:
    """A run's ``(local_time, time_zone)``: a recipient_local run is keyed by its wall time
    (``wall``, in each recipient's own zone); a fixed run by its instant, read in the campaign's
    zone."""
    if time_mode == "recipient_local":
        return wall, None
    return wall_clock(first_fire_at, ZoneInfo(time_zone)), time_zone


class PreviewPublic(BaseModel):
    campaign_id: int
    scheduled_for: AwareDatetime = Field(description=_SCHEDULED_FOR)
    local_time: WallTime = Field(description=_LOCAL_TIME)
    time_zone: str | None = Field(description=_TIME_ZONE)
    audience: int
    holdout: int
    sendable: int
    zones: list[ZonePreview]
    encoding: str
    segments_per_message: int = Field(description="Upper bound over the placeholders' values")
    cost_units: int = Field(description="sendable x segments per message")
    capacity_per_s: float
    rate_per_s: float
    required_rate_per_s: float | None
    starts_at: AwareDatetime | None
    finishes_at: AwareDatetime | None
    meets_deadline: bool
    verdict: str


class WavePublic(BaseModel):
    time_zone: str | None
    fire_at: AwareDatetime
    deadline_at: AwareDatetime | None
    state: str
    released: int
    held_out: int
    chunks: int


class RunPublic(BaseModel):
    id: int
    campaign_id: int
    scheduled_for: AwareDatetime = Field(description=_SCHEDULED_FOR)
    local_time: WallTime = Field(description=_LOCAL_TIME)
    time_zone: str | None = Field(description=_TIME_ZONE)
    state: str
    rate_per_s: float | None
    created_at: AwareDatetime
    released_at: AwareDatetime | None
    waves: list[WavePublic]


class RunStats(BaseModel):
    run_id: int
    state: str
    audience: int = Field(description="Recipients released or held out so far")
    released: int
    held_out: int
    sent: int
    delivered: int
    failed: int
    deferred: int
    suppressed_by_reason: dict[str, int]
    states: dict[str, int]
    clicks: int = Field(description="Clicks on the run's links by people (bots excluded)")
    clicked: int = Field(description="Messages of the run with at least one such click")
    opt_outs: int = Field(description="Recipients who opted out after the run sent to them")


class CampaignStats(BaseModel):
    campaign_id: int
    runs: list[RunStats]

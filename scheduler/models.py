"""Campaign API schemas: templates, campaigns, previews, runs and stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from hexcast.core.errors import InvalidInput
from hexcast.core.ids import DbId
from hexcast.core.instants import WallClock, WallTime
from hexcast.core.pgtext import PG_TEXT, PgText
from scheduler.timing import localize, next_cron_wall, validate_cron, wall_clock
from sender import Lane, validate_template
from targeting import Name, SegmentDefinition, unset_default, validate_time_zone

__all__ = [
    "CAMPAIGN_LANES",
    "MIN_RATE",
    "PLACEHOLDER_FIELDS",
    "CampaignCreate",
    "CampaignPublic",
    "CampaignStats",
    "CampaignUpdate",
    "OnDeadline",
    "PlanFix",
    "PreviewPublic",
    "PreviewRequest",
    "Priority",
    "QuietHoursIn",
    "RunPublic",
    "RoutePreview",
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
OnDeadline = Literal["expire", "send_late"]
"""At a wave's deadline: expire what is not sent yet (reason ``deadline``), or send it late."""
Priority = Literal["normal", "reserved"]
_PRIORITY = ("reserved: each run reserves its recipients' daily cap slot for its send day (in"
             " their zone), so geo offers and other campaigns leave it to this one; its run is"
             " created up to 24 h before it fires. Off for tenants with reserve_caps false")
CAMPAIGN_LANES = frozenset({Lane.BULK})
"""The lanes a campaign may use: bulk (a later one for small triggered campaigns may join)."""
_ON_DEADLINE = ("expire: nothing of a wave reaches a provider after its deadline (what is left"
                " expires with reason deadline); send_late: it is sent after the deadline")
Body = Annotated[str, Field(min_length=1, max_length=1600), PG_TEXT]


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
    on_deadline: OnDeadline = Field(default="expire", description=_ON_DEADLINE)
    priority: Priority = Field(default="normal", description=_PRIORITY)

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
        # marketing: consent, never exempt; geo would skip the bulk cap and fair share
        if value not in CAMPAIGN_LANES:
            raise ValueError(f"campaigns cannot use the {value.value} lane (only bulk)")
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
    on_deadline: OnDeadline = Field(description=_ON_DEADLINE)
    priority: Priority = Field(description=_PRIORITY)
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
    late_by_s: float | None = Field(default=None, description=(
        "How long after its deadline the zone's wave finishes at the planned rate; null when"
        " it is on time (or in fixed mode: see the preview's late_by_s)"))
    fits: int | None = Field(default=None, description=(
        "When the plan misses: the most of this zone's sendable recipients that fit (fix."
        "lower_audience_by)"))


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


class RoutePreview(BaseModel):
    name: str
    segments_per_s: float = Field(description="What the campaign's lane may take of the route")
    planned_segments_per_s: float = Field(description="Its part of the planned rate")
    planned_segments: int = Field(description="Segments of this run it is planned to carry")


class PlanFix(BaseModel):
    """The least change that meets every deadline, each one alone (computed on the forecast)."""

    start_earlier_s: int | None = Field(description=(
        "Start every wave this many seconds earlier (deadlines unchanged); null: no start"
        " within a year meets"))
    required_segments_per_s: float | None = Field(description=(
        "The rate the deadlines need, in segments/s; null: no rate meets"))
    add_segments_per_s: float | None = Field(description=(
        "Route capacity to add for the lane: required minus what the routes give (null: they"
        " give enough, the campaign's max_rate holds it back)"))
    max_rate_at_least: float | None = Field(description=(
        "Messages/s the campaign's max_rate must allow (null: it is not what holds it back)"))
    lower_audience_by: int | None = Field(description=(
        "Recipients to leave out: the sendable audience minus the most that fit (each zone's"
        " fits, in fire order); null: not even an empty wave meets"))
    suggestions: list[str]


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
    capacity_segments_per_s: float = Field(description=(
        "Segments/s the campaign's lane has for this tenant: the sum over the routes serving"
        " both, each at the lane's share of its rate"))
    capacity_per_s: float = Field(description=(
        "Messages/s: capacity_segments_per_s over segments_per_message, capped by max_rate"))
    rate_per_s: float = Field(description="The planned rate, messages/s")
    required_rate_per_s: float | None = Field(description="What the deadlines need, messages/s")
    routes: list[RoutePreview]
    starts_at: AwareDatetime | None
    finishes_at: AwareDatetime | None
    meets_deadline: bool
    late_by_s: float | None = Field(description=(
        "How long after its deadline the latest wave finishes; null: on time"))
    verdict: str
    fix: PlanFix | None = Field(description="What would make it meet; null when it meets")


_REMAINING = ("Unfinished runs: messages of the zone not yet sent (not released, and the senders'"
              " backlog on the zone released last)")
_MEASURED = ("Unfinished runs: messages/s settled over the last minute (the planned rate before it"
             " sends, between zones and in quiet hours)")
_PROJECTED = "Unfinished runs: when the zone is projected to finish at that rate, quiet hours included"
_FINISHED = ("When every message had its outcome: finished, finished_with_expired (or cancelled);"
             " a receipt not in by campaign_receipt_wait_s after the last acceptance never comes")


class WavePublic(BaseModel):
    time_zone: str | None
    fire_at: AwareDatetime
    deadline_at: AwareDatetime | None
    state: str
    released: int
    held_out: int
    expired: int = Field(description="Recipients not released: the wave's deadline had passed")
    chunks: int
    remaining: int | None = Field(default=None, description=_REMAINING)
    measured_rate_per_s: float | None = Field(default=None, description=_MEASURED)
    projected_finish_at: AwareDatetime | None = Field(default=None, description=_PROJECTED)
    at_risk: bool = Field(default=False, description="Projected to finish after its deadline")
    at_risk_at: AwareDatetime | None = Field(default=None, description="When campaign.at_risk was raised")


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
    finished_at: AwareDatetime | None = Field(default=None, description=_FINISHED)
    counts: dict[str, int] | None = Field(default=None, description="Its messages per state when it finished")
    measured_rate_per_s: float | None = Field(default=None, description=_MEASURED)
    waves: list[WavePublic]


class RunStats(BaseModel):
    run_id: int
    state: str
    audience: int = Field(description=(
        "Recipients released, held out or cut at the deadline so far"))
    released: int
    held_out: int
    sent: int
    delivered: int
    failed: int
    deferred: int
    expired: int = Field(description=(
        "Messages expired, and recipients not released because their wave's deadline passed"))
    expired_by_reason: dict[str, int] = Field(description=(
        "The same by reason: deadline (cut-off, released or not), ttl passed, ..."))
    cut_at_deadline: int = Field(description=(
        "Recipients the scheduler did not release: their wave's deadline had passed"))
    suppressed_by_reason: dict[str, int]
    states: dict[str, int]
    clicks: int = Field(description="Clicks on the run's links by people (bots excluded)")
    clicked: int = Field(description="Messages of the run with at least one such click")
    opt_outs: int = Field(description="Recipients who opted out after the run sent to them")
    reserved: int = Field(default=0, description=(
        "Recipients whose daily cap slot the run reserved (priority reserved)"))
    held_back_by_reservation: int = Field(default=0, description=(
        "Geo offers suppressed (reason reserved) because the run had reserved their slot"))


class CampaignStats(BaseModel):
    campaign_id: int
    runs: list[RunStats]

"""Database rows → API schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.lifecycle import RunSnapshot
from scheduler.models import CampaignPublic, RunPublic, RunStats, TemplatePublic, WavePublic, run_clock
from scheduler.timing import localize
from sender import DEADLINE, RunMessageStats, placeholders, segment_info

__all__ = ["campaign_public", "run_public", "run_stats", "template_public"]


def template_public(row: Any) -> TemplatePublic:
    info = segment_info(row["body"])
    return TemplatePublic(id=row["id"], name=row["name"], body=row["body"],
                          placeholders=placeholders(row["body"]), encoding=info.encoding,
                          segments=info.segments, created_at=row["created_at"])


def _instant(wall: datetime | None, campaign: Any) -> datetime | None:
    """A fixed-mode wall time as an instant at the campaign zone's offset (None otherwise)."""
    if wall is None or campaign["time_mode"] == "recipient_local":
        return None
    zone = ZoneInfo(campaign["time_zone"])
    return localize(wall, zone).astimezone(zone)


def campaign_public(row: Any) -> CampaignPublic:
    """The ``timestamp`` columns are wall times: answered as such, and as instants when fixed."""
    return CampaignPublic.model_validate({
        **dict(row), "run_at": _instant(row["run_at"], row), "run_at_local": row["run_at"],
        "deadline": _instant(row["deadline"], row), "deadline_local": row["deadline"],
    })


def _wave(row: Any, progress: RunSnapshot | None) -> WavePublic:
    live: dict[str, Any] = {}
    for z in progress.zones if progress is not None else ():
        if z.wave_id == row["id"]:
            live = {"remaining": z.remaining, "measured_rate_per_s": z.rate_per_s,
                    "projected_finish_at": z.projected_finish_at, "at_risk": z.at_risk}
    return WavePublic.model_validate({**dict(row), **live})


def run_public(row: Any, waves: list[Any], campaign: Any, progress: RunSnapshot | None = None
               ) -> RunPublic:
    """``scheduled_for`` answers the run's first fire instant; the ``timestamp`` column (a UTC
    instant or a wall time, by mode) becomes ``local_time`` with its ``time_zone``. An
    unfinished run's ``progress`` gives its measured rate and each zone's projection."""
    local_time, zone = run_clock(time_mode=campaign["time_mode"], time_zone=campaign["time_zone"],
                                 wall=row["scheduled_for"], first_fire_at=row["first_fire_at"])
    return RunPublic.model_validate({
        **dict(row), "scheduled_for": row["first_fire_at"], "local_time": local_time,
        "time_zone": zone, "waves": [_wave(w, progress) for w in waves],
        "measured_rate_per_s": None if progress is None else progress.rate_per_s})


def run_stats(row: Any, waves: list[Any], messages: RunMessageStats) -> RunStats:
    """Counts of the run's messages, and of the recipients its waves did not release because
    their deadline had passed (``cut_at_deadline``, also expired with reason ``deadline``)."""
    released = sum(w["released"] for w in waves)
    held_out = sum(w["held_out"] for w in waves)
    cut = sum(w["expired"] for w in waves)
    states = messages.states
    expired_by_reason = dict(messages.expired_by_reason)
    if cut:
        expired_by_reason[DEADLINE] = expired_by_reason.get(DEADLINE, 0) + cut
    return RunStats(
        run_id=row["id"], state=row["state"], audience=released + held_out + cut,
        released=released, held_out=held_out, sent=messages.sent,
        delivered=states.get("delivered", 0), failed=states.get("failed", 0),
        deferred=states.get("deferred", 0), expired=states.get("expired", 0) + cut,
        expired_by_reason=expired_by_reason, cut_at_deadline=cut,
        suppressed_by_reason=messages.suppressed_by_reason, states=states,
        clicks=messages.clicks, clicked=messages.clicked, opt_outs=messages.opt_outs,
        reserved=messages.reserved, held_back_by_reservation=messages.held_back,
    )

"""Database rows → API schemas."""

from __future__ import annotations

from typing import Any

from scheduler.models import CampaignPublic, RunPublic, RunStats, TemplatePublic, WavePublic
from sender.stats import RunMessageStats
from sender.text import placeholders, segment_info

__all__ = ["campaign_public", "run_public", "run_stats", "template_public"]


def template_public(row: Any) -> TemplatePublic:
    info = segment_info(row["body"])
    return TemplatePublic(id=row["id"], name=row["name"], body=row["body"],
                          placeholders=placeholders(row["body"]), encoding=info.encoding,
                          segments=info.segments, created_at=row["created_at"])


def campaign_public(row: Any) -> CampaignPublic:
    return CampaignPublic.model_validate(dict(row))


def _wave(row: Any) -> WavePublic:
    return WavePublic.model_validate(dict(row))


def run_public(row: Any, waves: list[Any]) -> RunPublic:
    return RunPublic.model_validate({**dict(row), "waves": [_wave(w) for w in waves]})


def run_stats(row: Any, waves: list[Any], messages: RunMessageStats) -> RunStats:
    released = sum(w["released"] for w in waves)
    held_out = sum(w["held_out"] for w in waves)
    states = messages.states
    return RunStats(
        run_id=row["id"], state=row["state"], audience=released + held_out, released=released,
        held_out=held_out, sent=messages.sent, delivered=states.get("delivered", 0),
        failed=states.get("failed", 0), deferred=states.get("deferred", 0),
        suppressed_by_reason=messages.suppressed_by_reason, states=states,
        clicks=messages.clicks, clicked=messages.clicked, opt_outs=messages.opt_outs,
    )

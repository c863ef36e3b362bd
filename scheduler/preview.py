"""A campaign's preview: audience per zone, the forecast at what the routes give its lane, the
routes' part of it, and, when it misses a deadline, by how much and what would make it meet.
Pure: the capacity comes in (``sender.lane_capacity`` over the configured routes)."""

from __future__ import annotations

import math

from scheduler.advice import Suggestions, suggest
from scheduler.forecast import (
    QuietHours,
    WaveForecast,
    forecast,
    message_capacity,
    pacing_rate,
    required_rate,
)
from scheduler.models import PlanFix, PreviewPublic, RoutePreview, ZonePreview, run_clock
from scheduler.service import Campaign, Fire, ZoneCount, max_segments, plan_waves
from sender import LaneCapacity

__all__ = ["build_preview", "duration_text"]


def duration_text(seconds: float) -> str:
    """``3725`` → ``1 h 2 min 5 s`` (whole seconds, rounded up)."""
    left = math.ceil(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if left >= size:
            parts.append(f"{left // size} {unit}")
            left %= size
    return " ".join([*parts, f"{left} s"] if left or not parts else parts)


def _late_s(w: WaveForecast) -> float | None:
    if w.deadline_at is None or w.finishes_at <= w.deadline_at:
        return None
    return (w.finishes_at - w.deadline_at).total_seconds()


def _verdict(meets: bool, need: float | None, capacity: float, late: float | None) -> str:
    if capacity <= 0:
        return "cannot send: no route serves the campaign's lane for this tenant"
    if need is None:
        return "no deadline"
    if meets:
        return f"meets the deadline at {capacity:.1f}/s or more; needs {need:.2f}/s"
    if need == float("inf"):
        return "cannot meet deadline: it is before the start"
    return (f"cannot meet deadline: needs {need:.2f} messages/s, capacity is {capacity:.2f}/s"
            + (f"; a wave ends up to {duration_text(late)} after its deadline" if late else ""))


def _routes(capacity: LaneCapacity, rate_segments: float, segments: int) -> list[RoutePreview]:
    """Each route's capacity and its part of the plan; the run's segments split in proportion
    (largest remainders, so they add up)."""
    split = capacity.split(rate_segments)
    total = sum(split.values())
    exact = {n: segments * s / total if total else 0.0 for n, s in split.items()}
    whole = {n: math.floor(v) for n, v in exact.items()}
    short = segments - sum(whole.values()) if total else 0
    for n in sorted(exact, key=lambda k: whole[k] - exact[k])[:short]:
        whole[n] += 1
    return [RoutePreview(name=r.name, segments_per_s=r.segments_per_s,
                         planned_segments_per_s=split[r.name], planned_segments=whole[r.name])
            for r in capacity.routes]


def _up(value: float) -> str:
    """``value`` rounded up to hundredths (the suggestions' own 1e-9 margin aside)."""
    return f"{math.ceil(round(value * 100, 4)) / 100:.2f}"


def _fix(s: Suggestions, *, have: float, lane: str) -> PlanFix:
    text = []
    if s.start_earlier_s:
        text.append(f"start {duration_text(s.start_earlier_s)} earlier")
    if s.add_segments_per_s is not None:
        text.append(f"add {_up(s.add_segments_per_s)} segments/s of {lane} capacity for this"
                    f" tenant ({have:.2f} -> {_up(s.required_segments_per_s or 0.0)})")
    if s.max_rate_at_least is not None:
        text.append(f"raise max_rate to {_up(s.max_rate_at_least)} messages/s")
    if s.lower_audience_by and s.fits is not None:
        kept = sum(s.fits)
        text.append(f"send to {s.lower_audience_by} fewer recipients ({kept} of"
                    f" {kept + s.lower_audience_by} fit)")
    return PlanFix(
        start_earlier_s=s.start_earlier_s, required_segments_per_s=s.required_segments_per_s,
        add_segments_per_s=s.add_segments_per_s, max_rate_at_least=s.max_rate_at_least,
        lower_audience_by=s.lower_audience_by, suggestions=text,
    )


def build_preview(
    c: Campaign, fire: Fire, zones: list[ZoneCount], *, capacity: LaneCapacity,
    quiet: QuietHours | None = None,
) -> PreviewPublic:
    """Audience per zone, holdout, cost and the wave forecast for ``fire`` at ``capacity``."""
    plans = plan_waves(c, fire, zones)
    encoding, segs = max_segments(c.body)
    cap = message_capacity(capacity.segments_per_s, segs, c.max_rate)
    need = required_rate(plans, quiet=quiet, default_zone=c.time_zone)
    sendable = sum(z.audience - z.holdout for z in zones)
    meets = (need is None or need <= cap) and (cap > 0 or sendable == 0)
    rate = pacing_rate(plans, cap, quiet=quiet, default_zone=c.time_zone) if cap > 0 else 0.0
    waves = forecast(plans, rate, quiet=quiet, default_zone=c.time_zone) if rate > 0 else []
    late = max((s for w in waves if (s := _late_s(w)) is not None), default=None)
    fix = None if meets else suggest(plans, rate=cap, segments_per_message=segs,
                                     route_segments_per_s=capacity.segments_per_s,
                                     max_rate=c.max_rate, quiet=quiet, default_zone=c.time_zone)
    by_zone = {w.time_zone: w for w in waves}
    fits = {p.time_zone: n for p, n in zip(plans, fix.fits, strict=True)} if fix and fix.fits else {}
    out = []
    for z in zones:
        w = by_zone.get(z.time_zone)
        out.append(ZonePreview(
            time_zone=z.time_zone, audience=z.audience, holdout=z.holdout,
            sendable=z.audience - z.holdout, starts_at=w.starts_at if w else None,
            finishes_at=w.finishes_at if w else None, deadline_at=w.deadline_at if w else None,
            late_by_s=_late_s(w) if w else None, fits=fits.get(z.time_zone)))
    local_time, zone = run_clock(time_mode=c.time_mode, time_zone=c.time_zone, wall=fire.scheduled_for,
                                 first_fire_at=fire.first_fire_at)
    return PreviewPublic(
        campaign_id=c.id, scheduled_for=fire.first_fire_at, local_time=local_time, time_zone=zone,
        audience=sum(z.audience for z in zones), holdout=sum(z.holdout for z in zones),
        sendable=sendable, zones=out, encoding=encoding, segments_per_message=segs,
        cost_units=sendable * segs, capacity_segments_per_s=capacity.segments_per_s,
        capacity_per_s=cap, rate_per_s=rate,
        required_rate_per_s=None if need in (None, float("inf")) else need,
        routes=_routes(capacity, rate * segs, sendable * segs),
        starts_at=min((w.starts_at for w in waves), default=None),
        finishes_at=max((w.finishes_at for w in waves), default=None),
        meets_deadline=meets, late_by_s=late, verdict=_verdict(meets, need, cap, late),
        fix=None if fix is None else _fix(fix, have=min(capacity.segments_per_s, cap * segs),
                                          lane=c.lane.value),
    )

"""``python -m bench ordering``: why a run's waves are released one after another.

Until 2026-12-07 the scheduler released every due wave of a run at once (each in its own task,
each held to a few unsettled chunks) and the senders held the run to its rate, so the waves
with work outside quiet hours shared that rate equally (processor sharing: a wave joins at its
fire instant, pauses through quiet hours in its zone, leaves when done), while the plan
(:func:`scheduler.forecast.forecast`) serves them one after another, earliest deadline first.
The forecast bench measured the sharing (``BENCHMARKS.md``); :func:`side_by_side` models it,
and this scenario compares both on a recipient-local Black-Friday plan (18:00 local, deadline
local midnight, the holiday bench's zone mix) paced as the scheduler paces it: what the plan
promised against what side-by-side release would have done. Pure, seconds to run. When the
waves do not overlap the two are the same (tests/unit/test_wave_sharing.py).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench import ui
from bench.holiday import ZONES
from scheduler.forecast import QuietHours, WaveForecast, WavePlan, forecast, pacing_rate

__all__ = ["MAX_EVENTS", "add_arguments", "black_friday", "compare", "markdown", "run",
           "side_by_side"]

MAX_EVENTS = 100_000
"""Events (a wave joining, pausing, resuming or leaving) simulated at most; a plan that needs
more (a rate so low it sends for years) is taken as never finishing (OverflowError)."""
_DONE = 1e-9  # messages left below this are sent (float rounding of the shares)


def _after(instant: datetime, seconds: float) -> datetime:
    """``instant`` plus ``seconds`` of sending, rounded up to whole microseconds (as the
    forecast does: sending something always takes time)."""
    return instant + timedelta(microseconds=math.ceil(seconds * 1e6))


class _Sim:
    """The state of one simulation: what each wave has left, when it first and last sent."""

    def __init__(self, waves: list[WavePlan], rate: float, quiet: QuietHours | None,
                 default_zone: str) -> None:
        self.waves, self.rate, self.quiet = waves, rate, quiet
        self.zones = [] if quiet is None else [ZoneInfo(w.time_zone or default_zone) for w in waves]
        self.left = [float(w.messages) for w in waves]
        self.starts: list[datetime | None] = [None] * len(waves)
        self.finishes: list[datetime | None] = [
            w.fire_at if w.messages <= 0 else None for w in waves]

    def is_open(self, i: int, t: datetime) -> bool:
        return self.quiet is None or self.quiet.open_at(t, self.zones[i]) == t

    def next_event(self, t: datetime, working: list[int], sending: list[int]) -> datetime:
        """The next instant something changes: a wave fires, pauses, resumes or finishes."""
        events = [self.waves[i].fire_at for i in range(len(self.waves))
                  if self.left[i] > 0 and self.waves[i].fire_at > t]
        if self.quiet is not None:
            for i in working:
                zone = self.zones[i]
                events.append(self.quiet.closes_at(t, zone) if i in sending
                              else self.quiet.open_at(t, zone))
        if sending:
            share = self.rate / len(sending)
            events.append(_after(t, min(self.left[i] for i in sending) / share))
        return min(events)

    def step(self, t: datetime) -> datetime | None:
        """Advance from ``t`` to the next event; None when every wave is done."""
        working = [i for i, w in enumerate(self.waves) if self.left[i] > 0 and w.fire_at <= t]
        if not working and all(n <= 0 for n in self.left):
            return None
        sending = [i for i in working if self.is_open(i, t)]
        nxt = self.next_event(t, working, sending)
        if sending:
            served = (nxt - t).total_seconds() * self.rate / len(sending)
            for i in sending:
                if self.starts[i] is None:
                    self.starts[i] = t
                self.left[i] -= served
                if self.left[i] <= _DONE:
                    self.left[i], self.finishes[i] = 0.0, nxt
        return nxt


def side_by_side(
    waves: list[WavePlan], rate: float, *, quiet: QuietHours | None = None, default_zone: str = "UTC"
) -> list[WaveForecast]:
    """Start (first message) and finish of each wave (in fire order, as the forecast) when
    they share ``rate`` messages per second; see the module's docstring. Raises
    OverflowError for a plan that does not finish within :data:`MAX_EVENTS` events or the
    calendar, and ValueError for a rate that is not positive."""
    if rate <= 0:
        raise ValueError("the rate must be positive")
    ordered = sorted(waves, key=lambda w: w.fire_at)
    sim = _Sim(ordered, rate, quiet, default_zone)
    t: datetime | None = min((w.fire_at for w in ordered), default=None)
    for _ in range(MAX_EVENTS):
        if t is None:
            break
        t = sim.step(t)
    else:
        raise OverflowError("the waves do not finish")
    out = []
    for i, w in enumerate(ordered):
        finish = sim.finishes[i]
        if finish is None:  # pragma: no cover - every wave is done when the loop ends
            raise OverflowError("a wave does not finish")
        out.append(WaveForecast(w.time_zone, w.messages, sim.starts[i] or finish, finish,
                                w.deadline_at))
    return out


def black_friday(recipients: int, day: date) -> list[WavePlan]:
    """The holiday bench's zone mix, each zone firing at 18:00 local with its deadline at the
    next local midnight."""
    counts = Counter(ZONES[n % len(ZONES)] for n in range(len(ZONES)))
    waves = []
    for zone, share in sorted(counts.items()):
        tz = ZoneInfo(zone)
        fire = datetime.combine(day, time(18), tz).astimezone(UTC)
        deadline = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
        waves.append(WavePlan(zone, fire, recipients * share // len(ZONES), deadline))
    return waves


def compare(waves: list[WavePlan], rate: float) -> list[dict[str, Any]]:
    """Per zone (in release order): its finish minus its deadline, in seconds, one after
    another (the plan) and side by side."""
    shared = {f.time_zone: f for f in side_by_side(waves, rate)}
    return [{"zone": f.time_zone, "messages": f.messages,
             "in_order_s": (f.finishes_at - f.deadline_at).total_seconds() if f.deadline_at else 0.0,
             "side_by_side_s": (shared[f.time_zone].finishes_at - f.deadline_at).total_seconds()
             if f.deadline_at else 0.0}
            for f in forecast(waves, rate)]


def markdown(rows: list[dict[str, Any]]) -> str:
    def cell(s: float) -> str:
        return f"{s / 60:+,.0f} min" + (" **late**" if s > 0 else "")

    lines = ["| zone | recipients | one after another (the plan) | side by side |", "|---|---|---|---|"]
    lines += [f"| {r['zone']} | {r['messages']:,} | {cell(r['in_order_s'])} | "
              f"{cell(r['side_by_side_s'])} |" for r in rows]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipients", type=int, default=5_000_000)
    parser.add_argument("--capacity", type=float, default=1e9,
                        help="messages/s the routes give (default: unlimited, paced by deadline)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    waves = black_friday(args.recipients, date(2026, 11, 27))
    rate = pacing_rate(waves, args.capacity)
    rows = compare(waves, rate)
    ui.console.print(f"{args.recipients:,} recipients paced at {rate:,.1f} messages/s")
    ui.console.print(markdown(rows))
    return {"rate_per_s": rate, "zones": rows}

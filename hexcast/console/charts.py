"""Charts as inline SVG, drawn on the server: a timeline of bars, lines over time, a histogram
and a state strip. Pure functions of their data; every text is escaped, and each shape carries
a ``<title>`` (the browser's tooltip) with its exact values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

__all__ = ["Bar", "Line", "histogram", "lines", "strip", "timeline"]

_PAD_L, _PAD_R, _PAD_T, _PAD_B = 110, 12, 10, 22
PALETTE = ("#2f6fdf", "#d9822b", "#2e9e5b", "#c23c3c", "#7a4fc4", "#888888")


@dataclass(frozen=True, slots=True)
class Bar:
    """One zone on a timeline: what happened from ``start`` to ``end`` (None: still going),
    under its plan (``plan``: start, end), with a tick at its deadline."""

    label: str
    start: datetime
    end: datetime | None
    deadline: datetime | None = None
    plan: tuple[datetime, datetime] | None = None
    late: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    """One series: (x, y) points (x in unix seconds), drawn dashed or not."""

    label: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


def _hhmm(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S")


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}"'
                  f' height="{height}" role="img" aria-label="{escape(label)}">'
                  + "".join(body) + "</svg>")


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.span, self.a, self.b = lo, (hi - lo) or 1.0, a, b

    def __call__(self, value: float) -> float:
        return self.a + (value - self.lo) / self.span * (self.b - self.a)


def timeline(bars: Sequence[Bar], *, now: datetime, width: int = 640) -> Markup:
    """One row per zone on a shared time axis: its plan (thin, light) over what happened or
    is projected, a tick at its deadline and a line at ``now``."""
    if not bars:
        return Markup('<p class="muted">No waves.</p>')
    instants = [t.timestamp() for b in bars for t in (b.start, b.end, b.deadline, *(b.plan or ()))
                if t is not None]
    lo, hi = min([*instants, now.timestamp()]), max([*instants, now.timestamp()])
    row = 28
    height = _PAD_T + row * len(bars) + _PAD_B
    x = _Scale(lo, hi, _PAD_L, width - _PAD_R)
    body = []
    for i, b in enumerate(bars):
        body += _zone_row(b, _PAD_T + i * row, row, x, now)
    xn = x(now.timestamp())
    body.append(f'<line class="now" x1="{xn:.1f}" x2="{xn:.1f}" y1="{_PAD_T}" y2="{height - _PAD_B}">'
                f"<title>now {now:%H:%M:%S}</title></line>")
    body += _time_axis(lo, hi, x, height)
    return _svg(width, height, body, "waves per zone on a timeline")


def _zone_row(b: Bar, y: float, row: int, x: _Scale, now: datetime) -> list[str]:
    out = [f'<text x="{_PAD_L - 6}" y="{y + 18}" text-anchor="end">{escape(b.label[-16:])}</text>']
    if b.plan is not None:
        p0, p1 = x(b.plan[0].timestamp()), x(b.plan[1].timestamp())
        tip = f"{b.label} planned {b.plan[0]:%H:%M:%S} → {b.plan[1]:%H:%M:%S}"
        out.append(f'<rect class="plan" x="{p0:.1f}" y="{y + 3}" width="{max(p1 - p0, 2):.1f}"'
                   f' height="6"><title>{escape(tip)}</title></rect>')
    x0, x1 = x(b.start.timestamp()), x((b.end or now).timestamp())
    kind = "bar late" if b.late else ("bar open" if b.end is None else "bar")
    until = f"{b.end:%H:%M:%S}" if b.end else "…"
    out.append(f'<rect class="{kind}" x="{x0:.1f}" y="{y + 11}" width="{max(x1 - x0, 2):.1f}" height="12">'
               f"<title>{escape(f'{b.label} {b.start:%H:%M:%S} → {until} {b.note}')}</title></rect>")
    if b.deadline is not None:
        xd = x(b.deadline.timestamp())
        out.append(f'<line class="deadline" x1="{xd:.1f}" x2="{xd:.1f}" y1="{y + 1}" y2="{y + row - 3}">'
                   f"<title>deadline {b.deadline:%H:%M:%S}</title></line>")
    return out


def _time_axis(lo: float, hi: float, x: _Scale, height: int) -> list[str]:
    y = height - 6
    return [f'<text class="axis" x="{x(lo):.1f}" y="{y}">{_hhmm(lo)}</text>',
            f'<text class="axis" x="{x(hi):.1f}" y="{y}" text-anchor="end">{_hhmm(hi)}</text>']


def lines(series: Sequence[Line], *, width: int = 640, height: int = 200, unit: str = "") -> Markup:
    """Series over a shared time axis with a legend; y from 0 to the largest value."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return Markup('<p class="muted">No data yet.</p>')
    xs = [p[0] for s in drawn for p in s.points]
    top = max([p[1] for s in drawn for p in s.points if p[1] == p[1]] or [1.0]) or 1.0
    x = _Scale(min(xs), max(xs), _PAD_L, width - _PAD_R)
    y = _Scale(0.0, top, height - _PAD_B, _PAD_T)
    body = [f'<text class="axis" x="{_PAD_L - 6}" y="{_PAD_T + 8}" text-anchor="end">'
            f'{top:,.0f}{escape(unit)}</text>',
            f'<text class="axis" x="{_PAD_L - 6}" y="{height - _PAD_B}" text-anchor="end">0</text>']
    for i, s in enumerate(drawn):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in s.points if py == py)
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        body.append(f'<polyline class="series" points="{path}" stroke="{colour}"{dash}>'
                    f"<title>{escape(s.label)}</title></polyline>")
        body.append(f'<text class="legend" x="6" y="{_PAD_T + 14 * (i + 2)}" fill="{colour}">'
                    f"{escape(s.label[:16])}</text>")
    body += _time_axis(min(xs), max(xs), x, height)
    return _svg(width, height, body, ", ".join(s.label for s in drawn))


def histogram(buckets: Sequence[tuple[str, float]], *, width: int = 640, height: int = 180) -> Markup:
    """Bars of (label, count), in the order given."""
    if not buckets or not any(v > 0 for _, v in buckets):
        return Markup('<p class="muted">No data yet.</p>')
    top = max(v for _, v in buckets) or 1.0
    step = (width - _PAD_L - _PAD_R) / len(buckets)
    y = _Scale(0.0, top, height - _PAD_B, _PAD_T)
    body = [f'<text class="axis" x="{_PAD_L - 6}" y="{_PAD_T + 8}" text-anchor="end">{top:,.0f}</text>']
    every = -(-len(buckets) // 12)  # at most a dozen labels under the bars
    for i, (label, value) in enumerate(buckets):
        x0 = _PAD_L + i * step
        body.append(f'<rect class="bar" x="{x0 + 1:.1f}" y="{y(value):.1f}" width="{max(step - 2, 1):.1f}"'
                    f' height="{y(0) - y(value):.1f}"><title>{escape(label)}: {value:,.0f}</title></rect>')
        if i % every == 0:
            body.append(f'<text class="axis" x="{x0 + step / 2:.1f}" y="{height - 6}"'
                        f' text-anchor="middle">{escape(label)}</text>')
    return _svg(width, height, body, "latency histogram")


def strip(segments: Sequence[tuple[float, float, str]], *, width: int = 640) -> Markup:
    """A band of (start, end, state) stretches (unix seconds), coloured by state."""
    if not segments:
        return Markup('<p class="muted">No data yet.</p>')
    lo, hi = segments[0][0], segments[-1][1]
    x = _Scale(lo, hi, _PAD_L, width - _PAD_R)
    height = 56
    body = [f'<text x="{_PAD_L - 6}" y="24" text-anchor="end">breaker</text>']
    for start, end, state in segments:
        body.append(f'<rect class="state-{escape(state)}" x="{x(start):.1f}" y="10"'
                    f' width="{max(x(end) - x(start), 1):.1f}" height="20">'
                    f"<title>{escape(state)} {_hhmm(start)} → {_hhmm(end)}</title></rect>")
    body += _time_axis(lo, hi, x, height)
    return _svg(width, height, body, "breaker history")

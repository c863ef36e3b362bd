"""The soak report: ``README.md`` (the run's facts, a table per figure with first, last and peak
value, growth per hour and the verdict of :func:`hexcast.chaos.growth.growth`, and the invariants
as checked) and one PNG per figure next to it.

The figures: resident memory and open file descriptors per process, throughput (the net change
per minute of the messages in each state; ``all`` is new messages per minute), PostgreSQL table
and index sizes, Redis memory, Redis keys, and topic sizes. Growth that does not level off fails
a soak (:func:`leaks`) in the figures of :data:`LEAK_FIGURES` only: tables and topics grow with
the traffic by design (until retention), and throughput is no size.

The PNGs are drawn with matplotlib (the Agg backend, no display), which only the ``analysis``
extra installs; it is imported when a report is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hexcast.chaos.growth import Growth, LeakRule, Point, growth
from hexcast.chaos.sampling import Sample
from hexcast.core.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LEAK_FIGURES", "Chart", "charts", "leaks", "write_report"]

LEAK_FIGURES = frozenset({"rss", "fds", "redis_memory", "redis_keys"})
"""The charts whose growth must level off in a soak."""

_MIB = 1024 * 1024
_SHOWN = 12  # series per chart, the largest by peak; the rest are counted, not drawn


@dataclass(frozen=True, slots=True)
class Chart:
    """One figure: ``series`` name → [(seconds since the first sample, value in ``unit``)]."""

    key: str
    title: str
    unit: str
    series: dict[str, list[Point]]
    rate: bool = False  # a rate, not a size: its table gives the mean instead of growth

    def shown(self) -> list[str]:
        """The names of the series drawn and tabled: the largest by peak, then by name."""
        peaks = {name: max((abs(v) for _, v in pts), default=0.0) for name, pts in self.series.items()}
        return sorted(peaks, key=lambda name: (-peaks[name], name))[:_SHOWN]


def _gather(samples: Sequence[Sample],
            pick: Callable[[Sample], Mapping[str, float]]) -> dict[str, list[Point]]:
    start = samples[0].at
    series: dict[str, list[Point]] = {}
    for sample in samples:
        at = (sample.at - start).total_seconds()
        for name, value in pick(sample).items():
            series.setdefault(name, []).append((at, value))
    return series


def _rates(samples: Sequence[Sample]) -> dict[str, list[Point]]:
    """Net change per minute of each state's count between consecutive samples, at the later."""
    start = samples[0].at
    series: dict[str, list[Point]] = {}
    for before, after in zip(samples, samples[1:], strict=False):
        minutes = (after.at - before.at).total_seconds() / 60
        if minutes <= 0:
            continue
        counts = {**after.messages_by_state, "all": sum(after.messages_by_state.values())}
        earlier = {**before.messages_by_state, "all": sum(before.messages_by_state.values())}
        at = (after.at - start).total_seconds()
        for state, n in counts.items():
            series.setdefault(state, []).append((at, (n - earlier.get(state, 0)) / minutes))
    return series


def charts(samples: Sequence[Sample]) -> list[Chart]:
    """Every figure of the report, from ``samples`` (in time order, at least one)."""
    return [
        Chart("rss", "Resident memory (RSS) per process", "MiB",
              _gather(samples, lambda s: {n: p.rss_bytes / _MIB for n, p in s.processes.items()})),
        Chart("fds", "Open file descriptors per process", "fds",
              _gather(samples, lambda s: {n: p.open_fds for n, p in s.processes.items()})),
        Chart("throughput", "Throughput: messages by state, net change per minute", "msgs/min",
              _rates(samples), rate=True),
        Chart("postgres", "PostgreSQL table and index sizes", "MiB",
              _gather(samples, lambda s: {n: b / _MIB for n, b in s.tables.items()})),
        Chart("redis_memory", "Redis memory (used_memory)", "MiB",
              _gather(samples, lambda s: {"used_memory": s.redis_used_bytes / _MIB})),
        Chart("redis_keys", "Redis keys under the deployment's prefix", "keys",
              _gather(samples, lambda s: {"keys": s.redis_keys})),
        Chart("topics", "Topic sizes (records retained)", "records",
              _gather(samples, lambda s: s.topic_records)),
    ]


def leaks(samples: Sequence[Sample], *, keys: Iterable[str] = LEAK_FIGURES,
          rule: LeakRule | None = None) -> list[str]:
    """``<chart>/<series>: <why>`` for each series of the charts ``keys`` whose growth does not
    level off; empty when none (or no samples)."""
    if not samples:
        return []
    wanted = set(keys)
    return [f"{chart.key}/{name}: {verdict.reason}"
            for chart in charts(sorted(samples, key=lambda s: s.at)) if chart.key in wanted
            for name, points in sorted(chart.series.items())
            if not (verdict := growth(points, rule)).leveled_off]


def _num(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def _judged(points: list[Point], checked: bool) -> str:
    verdict: Growth = growth(points)
    sign = "+" if verdict.per_hour >= 0 else ""
    said = "levels off" if verdict.leveled_off else "**keeps growing**" if checked else "grows (not checked)"
    return f"{sign}{_num(verdict.per_hour)} | {said}"


def _table(chart: Chart, checked: bool) -> list[str]:
    shown = chart.shown()
    if not shown:
        return ["No data (it needs two samples or more)."]
    last_columns = "mean |" if chart.rate else "growth / h | verdict |"
    lines = [f"| series ({chart.unit}) | first | last | peak | {last_columns}",
             "|---|---:|---:|---:|---:|" + ("" if chart.rate else "---|")]
    for name in shown:
        points = chart.series[name]
        values = [v for _, v in points]
        tail = _num(sum(values) / len(values)) if chart.rate else _judged(points, checked)
        lines.append(f"| {_cell(name)} | {_num(values[0])} | {_num(values[-1])} | {_num(max(values))}"
                     f" | {tail} |")
    if len(chart.series) > len(shown):
        lines.append(f"\n{len(chart.series) - len(shown)} smaller series left out.")
    return lines


def _markdown(samples: Sequence[Sample], found: list[Chart], *, title: str, facts: Mapping[str, str],
              invariants_markdown: str) -> str:
    first, last = samples[0].at, samples[-1].at
    lines = [f"# {title}", "", "| fact | value |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in facts.items()]
    lines += [f"| samples | {len(samples)}, {first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} UTC |",
              "", "## Growth", ""]
    found_leaks = leaks(samples)
    checked = ", ".join(c.title for c in found if c.key in LEAK_FIGURES)
    lines += ([f"- {_cell(leak)}" for leak in found_leaks] if found_leaks
              else ["No leak: every checked series levels off."])
    lines += ["", f"Checked: {checked}. The other figures grow with the traffic and are shown as they are."]
    for chart in found:
        lines += ["", f"## {chart.title}", "", f"![{chart.title}]({chart.key}.png)", ""]
        lines += _table(chart, chart.key in LEAK_FIGURES)
    lines += ["", "## Invariants", "", invariants_markdown.strip(), ""]
    return "\n".join(lines)


def _new_figure() -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError("the soak report draws its figures with matplotlib, which the analysis"
                          " extra installs: pip install -e '.[analysis]'") from exc
    figure = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _draw(chart: Chart, path: Path, span_s: float) -> None:
    figure = _new_figure()
    axes = figure.add_subplot()
    hours = span_s > 2 * 3600
    scale, label = (3600.0, "hours") if hours else (60.0, "minutes")
    for name in chart.shown():
        points = chart.series[name]
        axes.plot([t / scale for t, _ in points], [v for _, v in points], label=name, linewidth=1.2)
    if chart.shown():
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.set(title=chart.title, xlabel=f"{label} since the first sample", ylabel=chart.unit)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")


def write_report(out_dir: Path, samples: Sequence[Sample], *, title: str, facts: Mapping[str, str],
                 invariants_markdown: str) -> Path:
    """Write ``out_dir/README.md`` and a PNG per chart (``<key>.png``); the README's path.
    ``facts``: label → value (duration, messages handled, faults injected...), in that order."""
    if not samples:
        raise ValueError("a report needs at least one sample")
    ordered = sorted(samples, key=lambda s: s.at)
    found = charts(ordered)
    out_dir.mkdir(parents=True, exist_ok=True)
    span_s = (ordered[-1].at - ordered[0].at).total_seconds()
    for chart in found:
        _draw(chart, out_dir / f"{chart.key}.png", span_s)
    readme = out_dir / "README.md"
    readme.write_text(_markdown(ordered, found, title=title, facts=facts,
                                invariants_markdown=invariants_markdown), encoding="utf-8")
    return readme

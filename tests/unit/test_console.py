"""The console's pure parts: who a view is limited to, PromQL label escaping, the SVG charts
(escaped, drawn from their data), cumulative histogram buckets, breaker stretches, and what a
search text is taken for. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hexcast.console import charts
from hexcast.console.prometheus import Sample, Series, selector
from hexcast.console.route_page import _buckets, _stretches
from hexcast.console.search import _kind
from hexcast.console.sessions import Principal

T0 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def test_a_tenant_session_is_limited_to_its_tenant_whatever_it_asks() -> None:
    tenant, operator = Principal(7, "acme", 3, "csrf"), Principal(None, None, None, "csrf")
    assert tenant.tenant_scope(8) == 7
    assert tenant.tenant_scope(None) == 7
    assert operator.tenant_scope(8) == 8
    assert operator.tenant_scope(None) is None
    assert (tenant.actor, operator.actor) == ("console:tenant:7:key:3", "console:operator")


def test_label_values_are_escaped_in_promql() -> None:
    assert selector(provider='a"b\\c', tenant=None, state="x") == '{provider="a\\"b\\\\c",state="x"}'
    assert selector() == "{}"


def test_a_timeline_draws_each_zone_under_its_plan_and_escapes_its_label() -> None:
    bars = [charts.Bar("<script>", T0, T0 + timedelta(minutes=5), deadline=T0 + timedelta(minutes=4),
                       plan=(T0, T0 + timedelta(minutes=3)), late=True),
            charts.Bar("Chicago", T0 + timedelta(minutes=1), None)]
    svg = str(charts.timeline(bars, now=T0 + timedelta(minutes=2)))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert svg.count('class="plan"') == 1
    assert svg.count('class="bar late"') == 1
    assert svg.count('class="bar open"') == 1
    assert svg.count('class="deadline"') == 1
    assert str(charts.timeline([], now=T0)) == '<p class="muted">No waves.</p>'


def test_lines_histograms_and_strips_are_drawn_from_their_points() -> None:
    svg = str(charts.lines([charts.Line("planned", [(0, 0), (10, 100)]),
                            charts.Line("projected", [(5, 40), (12, 100)], dashed=True),
                            charts.Line("empty", [])]))
    assert svg.count("<polyline") == 2
    assert "stroke-dasharray" in svg
    assert ">100<" in svg  # the y axis tops at the largest value
    assert "No data" in str(charts.lines([]))
    bars = str(charts.histogram([("≤0.5s", 3), ("≤1s", 0), ("more", 1)]))
    assert bars.count('<rect class="bar"') == 3
    assert "No data" in str(charts.histogram([("≤0.5s", 0)]))
    assert str(charts.strip([(0, 30, "closed"), (30, 60, "open")])).count("<rect") == 2


def test_a_cumulative_histogram_becomes_counts_per_bucket() -> None:
    samples = [Sample({"le": "+Inf"}, 10), Sample({"le": "0.5"}, 4), Sample({"le": "1"}, 9)]
    assert _buckets(samples) == [("≤0.5s", 4), ("≤1s", 5), ("more", 1)]
    minutes = [Sample({"le": str(le)}, n) for le, n in ((1, 2), (120, 5), (7200, 5), ("+Inf", 5))]
    assert _buckets(minutes) == [("≤1s", 2), ("≤2m", 3), ("≤2h", 0)]  # one empty bucket after


def test_breaker_steps_merge_into_stretches_and_open_wins() -> None:
    series = [Series({"state": "closed"}, [(0, 1), (30, 0), (60, 1), (90, 1)]),
              Series({"state": "open"}, [(0, 0), (30, 1), (60, 0), (90, 0)])]
    assert _stretches(series) == [(0, 30, "closed"), (30, 60, "open"), (60, 90, "closed")]


def test_a_search_text_is_taken_for_a_phone_or_else_a_key() -> None:
    assert _kind("+1 312-555-0100", "auto") == "phone"
    assert _kind("13125550100", "auto") == "phone"
    assert _kind("msg-abc", "auto") == "key"
    assert _kind("13125550100", "reference") == "reference"

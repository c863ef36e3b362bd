"""Fault schedules are a function of their seed; soak durations are read strictly."""

from __future__ import annotations

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from hexcast.chaos.cli import parse_duration
from hexcast.chaos.faults import each_once, random_plan, rebalance

KINDS = ["api", "matcher", "sender-bulk", "scheduler"]


@given(seed=st.integers(0, 2**32), window=st.floats(10, 3600))
def test_each_once_kills_every_kind_and_restarts_both_servers_inside_the_window(
        seed: int, window: float) -> None:
    plan = each_once(seed, window_s=window, kinds=KINDS)
    assert sorted(f.target for f in plan if f.kind == "kill") == sorted(KINDS)
    assert sorted(f.kind for f in plan if f.kind != "kill") == ["postgres", "redis"]
    moments = [f.at_s for f in plan]
    assert moments == sorted(moments)
    assert all(0 < at < window for at in moments)
    assert plan == each_once(seed, window_s=window, kinds=KINDS)  # replayable


@given(seed=st.integers(0, 2**32), count=st.integers(0, 60))
def test_a_random_plan_only_removes_what_it_added_and_replays(seed: int, count: int) -> None:
    plan = random_plan(seed, window_s=600, count=count, kinds=KINDS)
    assert len(plan) == count
    assert plan == random_plan(seed, window_s=600, count=count, kinds=KINDS)
    grown: list[str] = []
    for fault in plan:
        if fault.kind == "add":
            grown.append(fault.target)
        elif fault.kind == "remove":
            grown.remove(fault.target)  # a ValueError would mean removing the last of a kind


def test_rebalance_adds_then_removes_each_kind() -> None:
    plan = rebalance(window_s=50)
    assert [(f.at_s, f.kind, f.target) for f in plan] == [
        (10.0, "add", "matcher"), (10.0, "add", "sender-bulk"),
        (30.0, "remove", "matcher"), (30.0, "remove", "sender-bulk")]


@pytest.mark.parametrize(("text", "seconds"), [("4h", 14400), ("90m", 5400), ("300s", 300),
                                               ("300", 300), (" 1.5H ", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "4 hours", "nan", "inf", "-1h", "30s", "8d", "1e9"])
def test_bad_durations_are_refused_with_a_clear_error(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="duration|1 minute"):
        parse_duration(text)

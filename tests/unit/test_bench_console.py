"""bench/console.py's pure helpers: the generated messages, waves and tallies, the auto_explain
notices and plans, and the report."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bench.console import bars, markdown, outline, parse_notice, seq_scans, summary
from bench.console_data import (
    COLUMNS,
    FINAL,
    LANES,
    SETTLED,
    Layout,
    chunk,
    message_row,
    pick,
    tally_rows,
    waves_of,
)

NOW = datetime(2026, 11, 27, 18, tzinfo=UTC)
LAY = Layout(20_000, tenants=[3, 4, 5], running=[(101, 3), (102, 4)], finished=[(90, 5), (91, 3), (92, 4)],
             now=NOW, hours=6.0, people=500)
STATES = {"queued", "sending", "accepted", "delivered", "failed", "expired", "suppressed", "deferred",
          "unknown"}


def _row(n: int) -> dict[str, Any]:
    return dict(zip(COLUMNS, message_row(n, LAY), strict=True))


def test_pick_walks_the_cumulative_weights() -> None:
    weights = [("a", 3), ("b", 7), ("c", 90)]
    assert [pick(weights, x) for x in (0, 2, 3, 9, 10, 99)] == ["a", "a", "b", "b", "c", "c"]


@given(st.integers(min_value=0, max_value=LAY.messages - 1))
def test_a_message_row_fits_the_messages_table(n: int) -> None:
    row = _row(n)
    assert row["message_key"] == row["client_ref"] == f"bx{n}"  # messages_client_ref_is_key
    assert re.fullmatch(r"\+[1-9][0-9]{6,14}", row["phone"])
    assert row["lane"] in dict(LANES)
    assert row["state"] in STATES
    assert row["tenant_id"] in LAY.tenants
    assert NOW - timedelta(hours=6) <= row["created_at"] <= NOW
    sent = row["state"] not in ("queued", "deferred")
    assert (row["provider"] is not None) == sent == (row["sent_at"] is not None)
    assert (row["provider_message_id"] is not None) == (row["state"] in SETTLED)
    assert (row["not_before"] is not None) == (row["state"] == "deferred")


@given(st.integers(min_value=0, max_value=LAY.messages - 1))
def test_bulk_messages_belong_to_a_run_of_their_tenant_by_age(n: int) -> None:
    row = _row(n)
    runs = dict(LAY.running if n >= LAY.messages // 2 else LAY.finished)
    if row["lane"] == "bulk":
        assert runs[row["campaign_run_id"]] == row["tenant_id"]
    else:
        assert row["campaign_run_id"] is None


def test_messages_wait_only_among_the_newest_and_spread_as_weighted() -> None:
    rows = [_row(n) for n in range(LAY.messages)]
    waiting = [n for n, r in enumerate(rows) if r["state"] in ("queued", "sending")]
    assert min(waiting) >= LAY.messages * (1 - LAY.fresh)
    assert 0.4 < len(waiting) / (LAY.messages * LAY.fresh) < 0.6
    lanes = Counter(r["lane"] for r in rows)
    for lane, percent in LANES:
        assert abs(lanes[lane] / len(rows) * 100 - percent) < 2, lane
    assert {r["tenant_id"] for r in rows} == set(LAY.tenants)


def test_chunk_counts_each_runs_messages_settled_and_final() -> None:
    rows, counts = chunk(LAY, 9_000, 12_000)
    assert [r[0] for r in rows] == [f"bx{n}" for n in range(9_000, 12_000)]
    expected: dict[int, list[int]] = {}
    for r in map(lambda t: dict(zip(COLUMNS, t, strict=True)), rows):
        if r["campaign_run_id"] is not None:
            c = expected.setdefault(r["campaign_run_id"], [0, 0, 0])
            c[0], c[1], c[2] = c[0] + 1, c[1] + (r["state"] in SETTLED), c[2] + (r["state"] in FINAL)
    assert counts == expected
    assert set(counts) == {90, 91, 92, 101, 102}  # the middle of the timeline: both halves' runs


@given(st.integers(min_value=0, max_value=10_000_000))
def test_a_running_runs_waves_release_what_it_released_one_zone_after_another(released: int) -> None:
    first = NOW - timedelta(hours=2.5)
    waves = waves_of(released, first_fire=first)
    assert sum(w.released for w in waves) == released
    assert [w.state for w in waves] == ["done", "done", "releasing", "pending"]
    assert [w.fire_at for w in waves] == [first + timedelta(hours=i) for i in range(4)]
    assert (waves[3].released, waves[3].started_at) == (0, None)
    assert waves[3].fire_at > NOW
    assert waves[2].planned >= waves[2].released
    assert waves[2].finished_at is None
    assert all(w.planned >= 0 and w.deadline_at > w.fire_at for w in waves)


@given(st.integers(min_value=0, max_value=10_000_000))
def test_a_finished_runs_waves_are_all_done(released: int) -> None:
    waves = waves_of(released, first_fire=NOW - timedelta(hours=6), running=False)
    assert sum(w.released for w in waves) == released == sum(w.planned for w in waves)
    assert all(w.state == "done" and w.finished_at is not None for w in waves)


@given(st.integers(min_value=0, max_value=2**30).flatmap(
    lambda s: st.tuples(st.just(s), st.integers(min_value=0, max_value=s))))
def test_tallies_add_up_to_the_runs_counts(counts: tuple[int, int]) -> None:
    settled, final = counts
    rows = tally_rows(settled, final, now=NOW)
    assert sum(r[0] for r in rows) == settled
    assert sum(r[1] for r in rows) == final
    assert len(rows) == 121
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)
    assert rows[-1][2] == NOW - timedelta(seconds=1)
    assert all(r[0] >= 0 and r[1] >= 0 for r in rows)


PLAN = {"Node Type": "Nested Loop", "Actual Rows": 4, "Actual Loops": 1, "Actual Total Time": 1.3,
        "Shared Hit Blocks": 690, "Shared Read Blocks": 5, "Plans": [
            {"Node Type": "Function Scan", "Actual Rows": 4, "Actual Loops": 1, "Actual Total Time": 0.004},
            {"Node Type": "Limit", "Plans": [{"Node Type": "Index Scan", "Relation Name": "messages",
                                              "Index Name": "messages_lane_pending", "Actual Rows": 500,
                                              "Actual Loops": 4, "Actual Total Time": 0.25}]},
            {"Node Type": "Seq Scan", "Relation Name": "campaign_waves"}]}


def _notice(query: str, plan: dict[str, Any], ms: float = 1.25) -> str:
    return f"duration: {ms} ms  plan:\n" + json.dumps({"Query Text": query, "Plan": plan}, indent=2)


def test_an_auto_explain_notice_gives_time_query_on_one_line_and_plan() -> None:
    found = parse_notice(_notice("SELECT l.lane\n    FROM unnest($1::text[])  AS l", PLAN))
    assert found == (1.25, "SELECT l.lane FROM unnest($1::text[]) AS l", PLAN)


def test_other_notices_and_the_drivers_own_statements_are_left_out() -> None:
    assert parse_notice("relation \"x\" already exists, skipping") is None
    assert parse_notice(_notice("WITH RECURSIVE typeinfo_tree(oid) AS (SELECT 1)", PLAN)) is None
    assert parse_notice(_notice("SELECT set_config('jit', $1, false)", PLAN)) is None


def test_seq_scans_name_the_relations_read_whole_at_any_depth() -> None:
    assert seq_scans(PLAN) == ["campaign_waves"]
    whole = {"Node Type": "Seq Scan", "Relation Name": "messages"}
    assert seq_scans({"Node Type": "Limit", "Plans": [whole]}) == ["messages"]


def test_outline_shows_a_node_a_line_indented_with_index_rows_time_and_buffers() -> None:
    lines = outline(PLAN)
    assert lines[0] == "Nested Loop (rows 4×1, 1.3 ms, buffers 695)"
    assert lines[3] == ("    Index Scan on messages using messages_lane_pending"
                        " (rows 500×4, 0.25 ms, buffers 0)")
    assert len(lines) == 5
    assert outline(PLAN, actual=False)[3] == "    Index Scan on messages using messages_lane_pending"


def test_bars_count_the_running_campaigns_progress_bars() -> None:
    html = '<tr data-campaign="1"><td><progress data-run="7" value="1" max="2"></progress></td></tr>' * 3
    assert bars(html) == 3
    assert bars('<progress id="run-progress" data-run="7">') == 0  # a campaign page's, not the overview's


def test_summary_is_median_and_nearest_rank_p95() -> None:
    assert summary([float(n) for n in range(1, 21)]) == {"n": 20, "median": 10.5, "p95": 19.0}


def _doc(statements: list[dict[str, Any]]) -> dict[str, Any]:
    timing = {"n": 10, "median": 12.0, "p95": 20.0}
    return {"args": {"messages": 200_000, "campaigns": 20, "finished": 200, "tenants": 10, "rounds": 10},
            "loaded": {"waiting": 2001, "messages_mb": 164, "load_s": 7.4, "copy_s": 5.4},
            "loadavg_end": "1.0", "statements": statements,
            "variants": {"no prometheus": {"server": {"/console": timing | {"bytes": 21515}},
                                           "browser": {"fcp": timing, "dcl": timing, "ttfb": timing},
                                           "messages_scans": {"seq": 0, "idx": 176}}}}


def _statement(query: str, seq: list[str], scope: str = "all tenants") -> dict[str, Any]:
    return {"scope": scope, "query": query, "ms": [1.0], "median_ms": 1.0, "seq_scans": seq,
            "plan": ["Seq Scan on x"]}


def test_the_report_flags_a_sequential_scan_of_messages() -> None:
    text = markdown(_doc([_statement("SELECT count(*) FROM messages", ["messages"]),
                          _statement("SELECT a | b FROM waves", ["campaign_waves"], scope="tenant 3")]))
    assert "**Seq Scan on messages** in: SELECT count(*) FROM messages" in text
    assert "| no prometheus | GET /console | 12.0 | 20.0 | 10 | 21,515 |" in text
    assert "| no prometheus | Chromium first-contentful-paint | 12.0 | 20.0 | 10 | |" in text
    assert "`SELECT a ¦ b FROM waves`" in text  # a pipe would split the table's cell
    assert "0 sequential, 176 by index" in text


def test_the_report_says_when_no_statement_scans_messages() -> None:
    text = markdown(_doc([_statement("SELECT 1 FROM campaign_waves", ["campaign_waves"])]))
    assert "no statement of the overview scans `messages` sequentially" in text
    assert "Seq Scan on messages**" not in text

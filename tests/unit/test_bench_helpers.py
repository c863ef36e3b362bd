"""The benchmark's pure helpers: percentiles, limit fractions, rates, the load and the report."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bench.common import fraction, percentile
from bench.geo import METRO, SIGMA_M, generate_stores, user_interests
from bench.kafka import GroupRun
from bench.loadgen import EVENTS_PER_POST, LoadPlan, batch_events
from bench.providers import DialectResult, dialect_settings, markdown, orders, route, rows, shares
from bench.report import BEGIN, END, _markdown
from bench.report import rows as report_rows
from hexcast.testing import make_settings
from sender.models import ProviderSpec
from targeting.geofence import distance_m
from targeting.service import interest_match


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 99) == 0.0
    assert percentile([7.0], 1) == 7.0


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=200),
       st.floats(min_value=0, max_value=100))
def test_percentile_is_a_member_between_min_and_max(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert min(values) <= p <= max(values)


def test_fraction_uses_the_tightest_positive_limit() -> None:
    assert fraction(50.0, {"copy": 200.0, "broker": 100.0, "unknown": 0.0}) == ("broker", 0.5)
    assert fraction(50.0, {}) == ("n/a", 0.0)


def test_group_run_rate_counts_from_first_to_last_output() -> None:
    run = GroupRun(start=100, target=1100, first_t=10.0, end_t=12.0)
    assert run.records_per_s == 500.0


def test_walk_ends_inside_the_fence_and_starts_outside() -> None:
    lat, lng = METRO.lat, METRO.lng
    now = datetime(2026, 11, 27, 18, tzinfo=UTC)
    events = batch_events([lat, lng, 80.0], "v1", "t", now, random.Random(3))
    assert len(events) == EVENTS_PER_POST
    dist = [distance_m(lat, lng, e["lat"], e["lng"]) for e in events]
    assert all(d > 80.0 for d in dist[:5])
    assert all(d <= 40.5 for d in dist[5:])
    assert events[-1]["ts"] == now.isoformat()
    assert datetime.fromisoformat(events[0]["ts"]) == now - timedelta(seconds=20 * (EVENTS_PER_POST - 1))
    assert len({e["event_id"] for e in events}) == EVENTS_PER_POST


def test_single_event_posts_carry_twenty_users() -> None:
    spots = [[s.lat, s.lng, s.radius_m] for s in generate_stores(50)]
    plan = LoadPlan(spots, users=1000, user_offset=500, per_user=1, seed=1)
    events = plan.post(3, datetime(2026, 11, 27, tzinfo=UTC))["events"]
    assert len(events) == EVENTS_PER_POST
    assert len({e["user_id"] for e in events}) == EVENTS_PER_POST
    assert all(500 <= int(e["user_id"][1:]) < 1500 for e in events)
    batched = LoadPlan(spots, users=10, user_offset=0, per_user=EVENTS_PER_POST, seed=1)
    assert len({e["user_id"] for e in batched.post(3, datetime(2026, 11, 27, tzinfo=UTC))["events"]}) == 1


def test_stores_are_deterministic_and_within_three_sigma_of_the_metro() -> None:
    first, again = generate_stores(500, seed=4), generate_stores(500, seed=4)
    assert first == again
    assert all(distance_m(METRO.lat, METRO.lng, s.lat, s.lng) <= 3 * SIGMA_M + 1 for s in first)
    assert {s.radius_m for s in first} <= {40.0, 60.0, 80.0, 120.0}


def test_every_user_matches_the_untargeted_offer_and_has_two_interests() -> None:
    for n in range(100):
        interests = user_interests(n)
        assert len(interests) == 2
        assert interest_match([], interests)


def _results() -> dict[str, object]:
    holiday = {"senders": 1, "rate": 5000.0, "accepted": 100, "recipients": 100, "wall_s": 0.02,
               "duplicates": 0, "resubmissions": 0, "rss_mb": {"api": 90.0}, "reference_rate": 10_000.0,
               "states": {"accepted": 99, "suppressed": 1},
               "otp": {"posted": 9, "ledgered": 9, "p50_ms": 100.0, "p99_ms": 300.0, "max_ms": 300.0}}
    limits = {"chunk": 1000, "copy_rows_per_s": 50_000.0, "broker_produce_per_s": 20.0,
              "broker_consume_per_s": 40.0, "sim_destinations_per_s": 100_000.0}
    return {"date": "2026-12-01", "machine": "m", "loadavg_end": "1 1 1", "command": "c", "sizes": {},
            "wall_s": 10.0, "holiday": [holiday], "limits": limits}


def test_report_rows_name_the_tightest_limit_and_the_reference_fraction() -> None:
    found = {r.metric.split(" (")[0]: r for r in report_rows(_results())}
    assert found["recipients/s"].limit == "broker produce 20,000/s"
    assert found["recipients/s"].fraction == "25%"
    assert found["vs reference pipeline"].fraction == "50%"
    assert found["exactly once"].value == "yes"
    assert found["exactly once"].limit == "accepted 99, suppressed 1"
    assert found["p50 / p99 to ledger"].value == "100 / 300 ms"


def test_exactly_once_needs_the_states_to_add_up_to_the_audience() -> None:
    results = _results()
    holiday = results["holiday"][0]  # type: ignore[index]
    holiday["states"] = {"accepted": 99}
    found = {r.metric.split(" (")[0]: r for r in report_rows(results)}
    assert found["exactly once"].value == "NO"


def test_markdown_block_is_delimited() -> None:
    block = _markdown(_results())
    assert block.startswith(BEGIN)
    assert block.endswith(END)
    assert "| 1 holiday, 1 sender(s) | recipients/s" in block


def test_flame_summary_counts_inclusive_and_self_samples() -> None:
    from bench.flame import summarise

    text = ("main (a/run.py:1);work (a/pkg/mod.py:10);json (b/json.py:5) 6\n"
            "main (a/run.py:1);work (a/pkg/mod.py:12) 4\n"
            "garbage\n")
    total, inclusive, leaf = summarise(text)
    assert total == 10
    assert dict(inclusive)["work (pkg/mod.py)"] == 10
    assert dict(leaf) == {"json (b/json.py)": 6, "work (pkg/mod.py)": 4}


def _dialect(dialect: str, round_no: int, rate: float, **extra: object) -> DialectResult:
    found = DialectResult(dialect, round_no, 1000, accepted=1000, wall_s=1000 / rate, rate=rate,
                          requests=2, states={"accepted": 1000},
                          cpu_s={"sender-bulk-0": 0.05, "provider-sim": 0.02, "postgres": 1.0})
    for name, value in extra.items():
        setattr(found, name, value)
    return found


def test_provider_routes_carry_what_each_adapter_needs() -> None:
    generic = route("generic", "http://sim", "http://api")
    assert generic == {"name": "generic-route", "kind": "generic", "url": "http://sim",
                       "token": generic["token"]}
    sinch = route("sinch", "http://sim", "http://api")
    assert sinch["callback_url"] == "http://api/v1/webhooks/providers/sinch-route"
    assert all(sinch[k] for k in ("webhook_key", "account", "sender_id"))
    assert "webhook_key" not in route("twilio", "http://sim", "http://api")
    assert route("telnyx", "http://sim", "http://api")["webhook_key"] != sinch["webhook_key"]


def test_dialect_settings_route_the_sender_to_the_simulator_in_that_dialect() -> None:
    base = make_settings("kafka://127.0.0.1:9092", "postgresql://x/y", provider_url="http://127.0.0.1:8200",
                         api_public_url="http://127.0.0.1:8300")
    held = dialect_settings(base, "plivo", receipts=False)
    [spec] = [ProviderSpec.model_validate(s) for s in json.loads(held.sender_providers)]
    assert (spec.kind, spec.url, spec.token.get_secret_value()) == (
        "plivo", "http://127.0.0.1:8200", held.provider_token)
    assert (held.sim_dialect, held.provider_name, held.sim_account) == ("plivo", spec.name, spec.account)
    assert held.sim_receipts  # a callback URL (Sinch refuses per-recipient reports without one)
    assert held.sim_dlr_delay_s > 86_400  # but nothing posted during the run
    assert dialect_settings(base, "plivo", receipts=True).sim_dlr_delay_s < 1


def test_orders_rotate_so_each_dialect_runs_in_every_position() -> None:
    assert orders(["g", "s", "p"], 1) == [["g", "s", "p"]]
    rounds = orders(["g", "s", "p"], 3)
    assert rounds == [["g", "s", "p"], ["s", "p", "g"], ["p", "g", "s"]]
    assert all({r[n] for r in rounds} == {"g", "s", "p"} for n in range(3))


def test_shares_compare_each_run_with_the_baseline_of_its_round() -> None:
    results = [_dialect("generic", 0, 1000.0), _dialect("sinch", 0, 900.0),
               _dialect("sinch", 1, 500.0), _dialect("generic", 1, 2000.0),
               _dialect("plivo", 2, 700.0)]  # round 2 has no baseline
    assert shares(results) == {"generic": [1.0, 1.0], "sinch": [0.9, 0.25]}


def test_provider_rows_show_medians_ranges_cpu_and_exactly_once() -> None:
    results = [_dialect("generic", 0, 1000.0), _dialect("sinch", 0, 950.0),
               _dialect("generic", 1, 1000.0), _dialect("sinch", 1, 850.0, duplicates=1),
               _dialect("twilio", 0, 100.0)]
    found = {row[0]: row for row in rows(results)}
    assert found["generic"][1:4] == ["1,000 (1,000–1,000)", "100% (100%–100%)", ""]
    assert found["sinch"][1:4] == ["900 (850–950)", "90% (85%–95%)", "≥ 90%"]
    assert found["twilio"][2:5] == ["10%", "", "2"]
    assert found["twilio"][5:7] == ["50", "20"]  # sender, provider-sim: µs per recipient
    assert found["twilio"][7] == "70 · 0% busy"  # the run's processes, not PostgreSQL
    assert found["generic"][8] == "yes"
    assert found["sinch"][8].startswith("NO: accepted 1,000, dup 1")
    assert markdown(results).count("\n") == 1 + len(found)  # a header, its rule, a row each

"""The chaos invariants' pure rules (hexcast.chaos.checks) and the verdict's report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hexcast.chaos.checks import (
    RunCounts,
    Sent,
    accepted_in_ledger,
    after_stop,
    audience_adds_up,
    busiest_window,
    in_quiet_hours,
    letter_facts,
    letters_have_reasons,
    nothing_stuck,
    once_per_campaign,
    quiet_hours,
    rate_limits,
    sent_has_row,
    visits_accounted,
)
from hexcast.chaos.invariants import Verdict, Violation
from sender.quiet import Window

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York, 15:00 in London
NY = "+12125550100"  # a New York number (phonenumbers: America/New_York)
UK = "+447937100001"


def _sent(key: str, phone: str = UK, *, at: datetime = T0, run: int | None = None,
          tenant: int | None = 1, lane: str = "bulk", provider: str | None = "sim",
          segments: int = 1, confirmation: bool = False) -> Sent:
    return Sent(key=key, phone=phone, accepted_at=at, segments=segments, tenant_id=tenant,
                lane=lane, run_id=run, provider=provider, confirmation=confirmation)


def test_once_per_campaign_finds_a_recipient_twice_in_a_run_and_a_key_twice() -> None:
    clean = [_sent("a", run=1), _sent("b", run=2), _sent("c", "+447937100002", run=1)]
    assert once_per_campaign(clean).violation is None
    twice = once_per_campaign([*clean, _sent("d", run=1), _sent("a", run=1)]).violation
    assert twice is not None
    assert "1 message keys and 1 run recipients" in twice.detail
    assert set(twice.examples) == {"a", f"run 1 {UK}"}


def test_sent_has_row_reports_orphans_and_rows_that_deny_the_send() -> None:
    assert sent_has_row([_sent("a")], {}).violation is None
    found = sent_has_row([_sent("a"), _sent("x", tenant=None)], {"b": "suppressed"}).violation
    assert found is not None
    assert found.examples == ("x", "b (suppressed)")


def test_accepted_in_ledger_reports_acceptances_the_provider_never_recorded() -> None:
    assert accepted_in_ledger(["a", "b"], {"a", "b", "c"}).violation is None
    found = accepted_in_ledger(["a", "b", "z"], {"a", "b"}).violation
    assert found is not None
    assert found.examples == ("z",)
    assert "1 messages recorded as accepted" in found.detail


def test_audience_adds_up_counts_holdouts_cuts_and_final_states() -> None:
    good = RunCounts(7, released=5, held_out=2, cut=3,
                     states={"accepted": 2, "delivered": 1, "suppressed": 1, "unknown": 1})
    checked = audience_adds_up([good])
    assert checked.violation is None
    assert "audience 10, 1 unknown" in checked.checked
    lost = RunCounts(8, released=5, held_out=0, cut=0, states={"delivered": 4})
    stuck = RunCounts(9, released=2, held_out=0, cut=0, states={"delivered": 1, "sending": 1})
    broken = audience_adds_up([good, lost, stuck]).violation
    assert broken is not None
    assert [e.split(":")[0] for e in broken.examples] == ["run 8", "run 9"]
    woke = RunCounts(10, released=4, held_out=0, cut=0, redeferred=2,
                     states={"delivered": 1, "deferred": 1, "queued": 1, "sending": 1})
    assert audience_adds_up([woke]).violation is None  # released from deferral: in flight
    half = RunCounts(11, released=3, held_out=0, cut=0, redeferred=1,
                     states={"delivered": 1, "queued": 2})
    assert audience_adds_up([half]).violation is not None  # one queued was never deferred


def test_after_stop_uses_the_claim_time_and_exempts_confirmations() -> None:
    stop = {(1, UK): T0}
    sends = [_sent("before", at=T0 + timedelta(seconds=30)),  # claimed before the STOP
             _sent("late", at=T0 + timedelta(seconds=30)),
             _sent("cfm", at=T0 + timedelta(seconds=30), confirmation=True),
             _sent("other-tenant", at=T0 + timedelta(seconds=30), tenant=2)]
    claimed = {"before": T0 - timedelta(seconds=1)}
    found = after_stop(sends, stop, claimed, slack_s=2).violation
    assert found is not None
    assert found.examples == ("late",)
    assert after_stop(sends[:1], stop, claimed, slack_s=2).violation is None


def test_in_quiet_hours_follows_the_senders_rule() -> None:
    ny_night = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 22:00 in New York
    assert in_quiet_hours(ny_night, NY, None, None)
    assert not in_quiet_hours(T0, NY, None, None)
    assert in_quiet_hours(T0, NY, None, Window(time(11), time(20)))  # the tenant narrows it
    assert in_quiet_hours(T0, NY, "Asia/Tokyo", None)  # 00:00 in the profile zone: strictest wins


def test_quiet_hours_allows_the_slack_and_exempts_otp() -> None:
    edge = datetime(2026, 3, 3, 2, 0, 1, tzinfo=UTC)  # 21:00:01 in New York
    sends = [_sent("edge", NY, at=edge), _sent("late", NY, at=edge + timedelta(minutes=5)),
             _sent("otp", NY, at=edge + timedelta(minutes=5), lane="otp")]
    found = quiet_hours(sends, {}, {}, slack_s=2).violation
    assert found is not None
    assert [e.split()[0] for e in found.examples] == ["late"]


@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 4)), max_size=40))
def test_busiest_window_is_the_heaviest_second_of_any_start(points: list[tuple[int, int]]) -> None:
    at = [(T0 + timedelta(milliseconds=ms), w) for ms, w in points]
    _, peak = busiest_window(at)
    brute = max((sum(w for t, w in at if s <= t < s + timedelta(seconds=1)) for s, _ in at), default=0)
    assert peak == brute


def test_rate_limits_allow_burst_plus_rate_over_the_slack() -> None:
    spread = [_sent(f"k{i}", at=T0 + timedelta(milliseconds=10 * i), segments=2) for i in range(50)]
    # 100 segments within 0.5 s: within 10 + 30 × (1 + 3), over 10 + 30 × 1
    assert rate_limits(spread, {"sim": (30.0, 10.0)}, slack_s=3).violation is None
    assert rate_limits(spread, {"sim": (30.0, 10.0)}, slack_s=0).violation is not None
    checked = rate_limits([*spread, _sent("z", provider="elsewhere")], {"sim": (100.0, 100.0)}, 0)
    assert checked.violation is None
    assert "not checked: elsewhere" in checked.checked


def test_visits_accounted_and_letters_and_stuck_sending() -> None:
    found = visits_accounted(["a", "b", "c", "d"], {"a": 1, "d": 2}, {"b"}).violation
    assert found is not None
    assert found.examples == ("c", "d")
    assert letters_have_reasons([(0, "bad visit record: x"), (1, " ")]).violation is not None
    assert letters_have_reasons([(0, "why")]).violation is None
    old, new = T0 - timedelta(seconds=200), T0 - timedelta(seconds=10)
    stuck = nothing_stuck([("old", old), ("new", new)], T0, 120).violation
    assert stuck is not None
    assert stuck.examples == ("old",)


def test_letter_facts_reads_tenants_and_event_ids_of_any_record() -> None:
    visit = {"tenant_id": 3, "user_id": "u", "events": [{"event_id": "e1"}, {"event_id": "e2"}]}
    assert letter_facts(json.dumps(visit)) == ({3}, {"e1", "e2"})
    batch = {"items": [{"tenant_id": 4}, {"tenant_id": 5}]}
    assert letter_facts(json.dumps(batch)) == ({4, 5}, set())
    assert letter_facts("not json") == (set(), set())
    assert letter_facts("[1, 2]") == (set(), set())


def test_verdict_markdown_marks_the_broken_invariants() -> None:
    verdict = Verdict(checked={"a": "3 things", "b": "2 things"},
                      violations=(Violation("b", "2 went wrong", ("k1",)),))
    text = verdict.markdown()
    assert not verdict.ok
    assert "| a | held | 3 things |" in text
    assert "| b | **broken** | 2 things |" in text
    assert "- `k1`" in text
    assert Verdict(checked={"a": "x"}, violations=()).ok

"""Message keys are deterministic; posted batches group into one record per user."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from sender.keys import bulk_key, confirmation_key, geo_key, otp_key
from streams.models import VisitIn
from streams.service import group_visits
from targeting.service import interest_match


@given(st.integers(1, 10**6), st.integers(1, 10**6), st.text(min_size=1, max_size=30), st.dates())
def test_geo_key_is_deterministic_and_prefixed(tenant: int, promo: int, user: str, day: date) -> None:
    first = geo_key(tenant_id=tenant, promotion_id=promo, user_id=user, local_date=day)
    again = geo_key(tenant_id=tenant, promotion_id=promo, user_id=user, local_date=day)
    assert first == again
    assert first.startswith("geo-")
    assert len(first) == 36


def test_keys_are_the_same_across_releases() -> None:
    """A key that changed in a deploy would let a redelivered cause be sent a second time:
    these values were made by the first release and must never change."""
    day = date(2026, 11, 27)
    assert geo_key(tenant_id=1, promotion_id=2, user_id="u", local_date=day) == (
        "geo-1c4a275ce3d5523635e747668ca459c0")
    assert bulk_key(campaign_run_id=7, recipient_id=123456) == "blk-d5bd52b1ea6b3a5a69f1b36dcad6f59d"
    assert otp_key(tenant_id=3, idempotency_key="abc") == "otp-8f5d5b1a5e6103ee26173aa11d15c386"
    assert confirmation_key(tenant_id=3, inbound_id=9) == "cfm-51215d74369f4b0c911da84d6a4f726e"


def test_keys_differ_by_every_part() -> None:
    day = date(2026, 11, 27)
    base = geo_key(tenant_id=1, promotion_id=2, user_id="u", local_date=day)
    assert base != geo_key(tenant_id=9, promotion_id=2, user_id="u", local_date=day)
    assert base != geo_key(tenant_id=1, promotion_id=9, user_id="u", local_date=day)
    assert base != geo_key(tenant_id=1, promotion_id=2, user_id="v", local_date=day)
    assert base != geo_key(tenant_id=1, promotion_id=2, user_id="u", local_date=day.replace(day=28))
    assert bulk_key(campaign_run_id=1, recipient_id=2) != bulk_key(campaign_run_id=2, recipient_id=1)
    assert otp_key(tenant_id=1, idempotency_key="a") != otp_key(tenant_id=2, idempotency_key="a")


def _event(user: str, event_id: str, minutes: int) -> VisitIn:
    ts = datetime.now(UTC) - timedelta(minutes=minutes)
    return VisitIn(event_id=event_id, user_id=user, lat=41.0, lng=-87.0, ts=ts)


def test_group_visits_one_record_per_user_sorted_and_deduped() -> None:
    events = [_event("a", "1", 1), _event("b", "2", 3), _event("a", "3", 5), _event("a", "1", 1)]
    records = {r.user_id: r for r in group_visits(7, events, received_at=datetime.now(UTC))}
    assert set(records) == {"a", "b"}
    assert [e.event_id for e in records["a"].events] == ["3", "1"]
    assert records["a"].tenant_id == 7


def test_interest_match_is_hierarchical() -> None:
    assert interest_match([], ["anything"])
    assert interest_match(["electronics/phones"], ["electronics"])
    assert interest_match(["electronics"], ["electronics/phones"])
    assert not interest_match(["electronics"], ["electronic"])
    assert not interest_match(["electronics/phones"], ["electronics/tv"])
    assert not interest_match(["garden"], [])

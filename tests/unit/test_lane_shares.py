"""Each lane's share of a provider account (pure: the buckets a lane's grants take from are
built, not called)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from hexcast.core.settings import load_settings
from sender.models import Lane, ProviderSpec
from sender.routing import _bucket

SPEC = ProviderSpec(name="acct", url="http://127.0.0.1:9", token="t", rate_per_s=1000.0)


def _rates(lane: Lane, **settings: float) -> list[float]:
    bucket, _ = _bucket(load_settings(redis_prefix="t", **settings), aioredis.Redis(), SPEC, lane)
    return [rate for _, rate, _ in bucket._buckets]


@given(share=st.floats(0.01, 0.99), bulk=st.floats(0.01, 1.0))
def test_geo_and_bulk_leave_otp_and_transactional_their_share(share: float, bulk: float) -> None:
    """The account's rate is every lane's; geo and bulk also take from the rest of it after
    the transactional share, and bulk from its own share, so otp and transactional always
    have ``sender_transactional_share`` of the account whatever geo and bulk do."""
    kept = {"sender_transactional_share": share, "sender_bulk_share": bulk}
    for lane in (Lane.OTP, Lane.TRANSACTIONAL):
        assert _rates(lane, **kept) == [1000.0]
    assert _rates(Lane.GEO, **kept) == pytest.approx([1000.0, 1000.0 * (1 - share)])
    assert _rates(Lane.BULK, **kept) == pytest.approx([1000.0, 1000.0 * (1 - share), 1000.0 * bulk])


def test_no_transactional_share_leaves_geo_and_bulk_as_before() -> None:
    assert _rates(Lane.GEO, sender_transactional_share=0.0) == [1000.0]
    assert _rates(Lane.BULK, sender_transactional_share=0.0, sender_bulk_share=0.7) == \
        pytest.approx([1000.0, 700.0])

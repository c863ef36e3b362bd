"""The dispatcher's paths of sending one chunk, over in-memory fakes (``senderfakes``): no
PostgreSQL, Redis or sockets. Each test checks final states, outcome counts, the events the
journal would publish and the provider calls."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hexcast.core.errors import ProviderUnavailable
from sender.breaker import BreakerState
from sender.models import MessageState
from tests.unit.senderfakes import (
    ACCEPT,
    Answer,
    FakeBucket,
    FakeProvider,
    MemoryStore,
    batch,
    dispatcher,
    rate_limited,
    refused,
    route,
    timeout,
    unavailable,
    unreachable,
)

Q, S = MessageState.QUEUED, MessageState.SENDING
ACCEPTED, FAILED = MessageState.ACCEPTED, MessageState.FAILED


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failures sleep up to 10 s before the next try; these tests need not wait."""
    monkeypatch.setattr("sender.dispatch.backoff", lambda _attempt: 0.0)
    monkeypatch.setattr("sender.reconcile.backoff", lambda _attempt: 0.0)


def _accepted_by(store: MemoryStore, provider: FakeProvider, keys: list[str]) -> bool:
    """Each of ``keys`` is ``accepted`` with ``provider`` and the id it gave."""
    return all(store.state(k) is ACCEPTED and store.row(k).provider == provider.name
               and store.provider_id(k) == provider.kept[k] for k in keys)


async def test_accepted_in_one_call_with_the_providers_ids() -> None:
    store, a = MemoryStore(), FakeProvider("a")
    out = await dispatcher(store, a).handle_many([batch(3)])
    keys = store.message_keys()
    assert (out.accepted, out.failed, out.dead) == (3, 0, {})
    assert a.calls == [keys]
    assert _accepted_by(store, a, keys)
    assert store.events == [(k, ACCEPTED, "provider accepted") for k in keys]
    assert store.trail(keys[0]) == [Q, S, ACCEPTED]


async def test_a_partial_answer_fails_the_rejected_and_retries_the_unanswered_elsewhere() -> None:
    store = MemoryStore()
    a = FakeProvider("a", Answer(accept=1, reject=1, failure=ProviderUnavailable("HTTP 503")))
    b = FakeProvider("b")
    out = await dispatcher(store, a, b).handle_many([batch(4)])
    k = store.message_keys()
    assert (out.accepted, out.failed, out.dead) == (3, 1, {})
    assert a.calls == [k]
    assert b.calls == [k[2:]]
    assert _accepted_by(store, a, k[:1])
    assert _accepted_by(store, b, k[2:])
    assert store.state(k[1]) is FAILED
    assert store.reason(k[1]) == "provider rejected: invalid number"
    assert (k[1], FAILED, "provider rejected: invalid number") in store.events
    assert store.trail(k[2]) == [Q, S, Q, S, ACCEPTED]


async def test_429_pauses_the_account_and_the_rows_go_out_elsewhere_uncounted() -> None:
    store, a_bucket = MemoryStore(), FakeBucket()
    a, b = FakeProvider("a", rate_limited(30)), FakeProvider("b")
    a_route = route(a, bucket=a_bucket, failures=1)
    out = await dispatcher(store, a_route, b, max_attempts=1).handle_many([batch(2)])
    k = store.message_keys()
    assert (out.accepted, out.rate_limited, out.failed) == (2, 1, 0)
    assert a_bucket.pauses == [30]
    assert await a_bucket.paused()
    assert a_route.breaker.state is BreakerState.CLOSED  # busy, not down
    assert a.calls == [k]
    assert b.calls == [k]
    assert _accepted_by(store, b, k)
    assert store.trail(k[0]) == [Q, S, Q, S, ACCEPTED]
    assert store.events == [(key, ACCEPTED, "provider accepted") for key in k]


async def test_messages_an_answer_leaves_out_are_looked_up_not_left_sending() -> None:
    """An adapter answering for fewer messages than it got, with no failure: the rest are
    reconciled at once (kept → accepted, never seen → sent again), not left for the sweep."""
    store = MemoryStore()
    a = FakeProvider("a", Answer(accept=1, keep=1))
    out = await dispatcher(store, a).handle_many([batch(3)])
    k = store.message_keys()
    assert out.accepted == 3
    assert a.lookups == k[1:]
    assert a.calls == [k, k[2:]]
    assert all(store.state(key) is ACCEPTED for key in k)
    assert a.kept_log == k  # each kept once: nothing sent twice


async def test_after_a_429_the_same_account_sends_once_the_pause_is_over() -> None:
    """The 429's claim is no attempt: a 5xx after it still leaves a second attempt."""
    store, bucket = MemoryStore(), FakeBucket()
    a = FakeProvider("a", rate_limited(0.05), unavailable(), ACCEPT)
    out = await dispatcher(store, route(a, bucket=bucket), max_attempts=2).handle_many([batch(2)])
    k = store.message_keys()
    assert bucket.pauses == [0.05]
    assert (out.rate_limited, out.dead) == (1, {})  # not "gave up after 2 attempts"
    assert a.calls == [k, k, k]
    assert out.accepted == 2
    assert _accepted_by(store, a, k)
    assert all(store.row(key).attempts == 2 for key in k)  # the 429's claim was given back


async def test_an_ambiguous_timeout_is_reconciled_and_only_the_unseen_are_resent() -> None:
    store = MemoryStore()
    a, b = FakeProvider("a", timeout(keep=2)), FakeProvider("b")
    a_route = route(a, failures=1)
    out = await dispatcher(store, a_route, b).handle_many([batch(4)])
    k = store.message_keys()
    assert (out.accepted, out.failed, out.unknown) == (4, 0, 0)
    assert a.calls == [k]
    assert a.lookups == k
    assert b.calls == [k[2:]]  # what `a` kept is never sent again
    assert _accepted_by(store, a, k[:2])
    assert _accepted_by(store, b, k[2:])
    assert Counter(a.kept_log + b.kept_log) == Counter(k)
    assert a_route.breaker.state is BreakerState.OPEN
    assert store.trail(k[0]) == [Q, S, ACCEPTED]
    assert store.trail(k[3]) == [Q, S, Q, S, ACCEPTED]


async def test_an_ambiguous_timeout_without_lookup_is_unknown_and_never_resent() -> None:
    store = MemoryStore()
    a, b = FakeProvider("a", timeout(keep=1), lookup=False), FakeProvider("b")
    out = await dispatcher(store, a, b).handle_many([batch(3)])
    why = "provider a has no lookup: outcome unknown, not resent"
    assert (out.unknown, out.accepted, out.failed) == (3, 0, 0)
    assert len(a.calls) == 1
    assert b.calls == []
    assert a.lookups == []
    assert store.events == [(key, MessageState.UNKNOWN, why) for key in store.message_keys()]


async def test_a_5xx_counts_against_the_breaker_and_fails_over() -> None:
    store = MemoryStore()
    a, b = FakeProvider("a", unavailable()), FakeProvider("b")
    a_route, b_route = route(a, failures=1), route(b, failures=1)
    out = await dispatcher(store, a_route, b_route).handle_many([batch(3)])
    k = store.message_keys()
    assert (out.accepted, out.failed) == (3, 0)
    assert a_route.breaker.state is BreakerState.OPEN
    assert b_route.breaker.state is BreakerState.CLOSED
    assert a.calls == [k]
    assert b.calls == [k]
    assert _accepted_by(store, b, k)
    assert ("msg-0000", S, Q, "a unavailable: HTTP 503") in store.audit


async def test_out_of_attempts_fails_for_good_after_max_attempts_calls() -> None:
    store = MemoryStore()
    a, b = FakeProvider("a", *[unavailable()] * 5), FakeProvider("b", *[unavailable()] * 5)
    out = await dispatcher(store, a, b, max_attempts=3).handle_many([batch(2)])
    why = "gave up after 3 attempts"
    assert (out.failed, out.accepted) == (2, 0)
    assert out.dead == {key: why for key in store.message_keys()}
    assert Counter(a.sent() + b.sent()) == {key: 3 for key in store.message_keys()}
    assert all(store.row(key).attempts == 3 for key in store.message_keys())
    assert store.events == [(key, FAILED, why) for key in store.message_keys()]


async def test_a_provider_that_cannot_be_reached_costs_no_attempt() -> None:
    """Refused connections (the provider process is down) are the route's failure, not the
    message's: they open the breaker but never make a message fail for good."""
    store = MemoryStore()
    a = FakeProvider("a", *[unreachable()] * 6)
    out = await dispatcher(store, route(a, failures=100), max_attempts=3).handle_many([batch(2)])
    assert (out.accepted, out.failed, out.dead) == (2, 0, {})
    assert len(a.calls) == 7  # six refused, then accepted
    assert all(store.row(key).attempts == 1 for key in store.message_keys())
    assert ("msg-0000", S, Q, "a unreachable: ConnectError") in store.audit


async def test_unroutable_rows_fail_without_a_call() -> None:
    store, a = MemoryStore(), FakeProvider("a")
    out = await dispatcher(store, route(a, tenants=[99])).handle_many([batch(2)])
    why = "no provider serves lane otp for tenant 1"
    assert (out.failed, out.accepted) == (2, 0)
    assert out.dead == {key: why for key in store.message_keys()}
    assert a.calls == []
    assert store.events == [(key, FAILED, why) for key in store.message_keys()]


async def test_a_refused_request_fails_for_good_without_retry() -> None:
    store = MemoryStore()
    a, b = FakeProvider("a", refused("HTTP 400: bad sender id")), FakeProvider("b")
    out = await dispatcher(store, a, b).handle_many([batch(2)])
    why = "a refused the request: HTTP 400: bad sender id"
    assert out.dead == {key: why for key in store.message_keys()}
    assert (out.failed, out.accepted) == (2, 0)
    assert len(a.calls) == 1
    assert b.calls == []
    assert store.events == [(key, FAILED, why) for key in store.message_keys()]


async def test_a_blocked_phone_is_suppressed_and_never_reaches_the_provider() -> None:
    store, a = MemoryStore(blocked={"+13125550000"}), FakeProvider("a")
    out = await dispatcher(store, a).handle_many([batch(3)])
    k = store.message_keys()
    assert (out.suppressed, out.accepted) == (1, 2)
    assert a.sent() == k[1:]
    assert store.state(k[0]) is MessageState.SUPPRESSED
    assert (k[0], MessageState.SUPPRESSED, "opted out") in store.events


async def test_a_small_grant_splits_the_chunk_into_calls() -> None:
    store, a = MemoryStore(), FakeProvider("a")
    out = await dispatcher(store, route(a, bucket=FakeBucket(per_grant=2))).handle_many([batch(5)])
    assert [len(c) for c in a.calls] == [2, 2, 1]
    assert out.accepted == 5
    assert _accepted_by(store, a, store.message_keys())


async def test_a_redelivered_batch_is_not_sent_again() -> None:
    store, a = MemoryStore(), FakeProvider("a")
    await dispatcher(store, a).handle_many([batch(2)])
    out = await dispatcher(store, a).handle_many([batch(2)])
    assert (out.duplicates, out.accepted) == (2, 0)
    assert len(a.calls) == 1


_answers = st.one_of(
    st.just(ACCEPT), st.just(unavailable()), st.just(refused()), st.just(rate_limited(0)),
    st.integers(0, 3).map(lambda n: timeout(keep=n)),
    st.tuples(st.integers(0, 2), st.integers(0, 2)).map(
        lambda t: Answer(accept=t[0], reject=t[1], failure=ProviderUnavailable("HTTP 503"))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 5), attempts=st.integers(1, 4), lookups=st.tuples(st.booleans(), st.booleans()),
       scripts=st.tuples(st.lists(_answers, max_size=5), st.lists(_answers, max_size=5)))
async def test_whatever_the_providers_answer_no_message_is_accepted_twice(
    n: int, attempts: int, lookups: tuple[bool, bool], scripts: tuple[list[Answer], list[Answer]],
) -> None:
    store = MemoryStore()
    providers = [FakeProvider(name, *script, lookup=lookup)
                 for name, script, lookup in zip("ab", scripts, lookups, strict=True)]
    out = await dispatcher(store, *providers, max_attempts=attempts).handle_many([batch(n)])
    kept = {p.name: p.kept for p in providers}
    assert max(Counter(ref for p in providers for ref in p.kept_log).values(), default=0) <= 1
    states = Counter(store.state(k) for k in store.message_keys())
    assert set(states) <= {ACCEPTED, FAILED, MessageState.UNKNOWN}
    assert (out.accepted, out.failed, out.unknown) == (
        states[ACCEPTED], states[FAILED], states[MessageState.UNKNOWN])
    for key in store.message_keys():
        row, kept_by = store.row(key), [name for name, refs in kept.items() if key in refs]
        if row.state is ACCEPTED:  # kept by exactly the provider recorded, with its id
            assert kept_by == [row.provider]
            assert store.provider_id(key) == kept[kept_by[0]][key]
        elif row.state is FAILED:
            assert kept_by == []
        else:  # unknown: the provider recorded may have kept it, no other one did
            assert kept_by in ([], [row.provider])


async def test_a_carrier_opt_out_at_send_records_an_opt_out() -> None:
    """Twilio refuses a number that unsubscribed at the carrier (21610): that message fails
    and its recipient is opted out for the tenant; the others are sent."""
    store = MemoryStore()
    a = FakeProvider("a", Answer(accept=1, reject=1, error="21610: Attempt to send to unsubscribed"))
    twilio = route(a, kind="twilio", account="AC1", sender_id="+13125550100")
    out = await dispatcher(store, twilio).handle_many([batch(2)])
    k = store.message_keys()
    assert (out.accepted, out.failed) == (1, 1)
    assert store.carrier_opt_outs == [store.row(k[1]).phone]
    assert store.reason(k[1]) == "provider rejected: 21610: Attempt to send to unsubscribed"


async def test_routes_limited_to_countries_get_only_their_numbers() -> None:
    """A Canadian-only account takes the +1 416 numbers, the US one the +1 312 ones: one call
    each, whatever order the chunk came in."""
    store = MemoryStore()
    us, ca = FakeProvider("us"), FakeProvider("ca")
    phones = ["+13125550100", "+14165550100", "+13125550101", "+14165550101"]
    out = await dispatcher(store, route(us, countries=["US"]), route(ca, countries=["CA"])
                           ).handle_many([batch(4, phones=phones)])
    assert out.accepted == 4
    assert sorted(us.sent()) == sorted(k for k in store.message_keys()
                                       if store.row(k).phone.startswith("+1312"))
    assert len(ca.calls) == 1
    assert len(ca.sent()) == 2


async def test_a_number_no_country_route_serves_is_unroutable() -> None:
    store = MemoryStore()
    out = await dispatcher(store, route(FakeProvider("us"), countries=["US"])
                           ).handle_many([batch(1, phones=["+442071234567"])])
    assert out.failed == 1
    assert "no provider serves" in (store.reason(store.message_keys()[0]) or "")

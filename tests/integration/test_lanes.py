"""Lane isolation: an OTP or a transactional message never queues behind the bulk backlog.

20,000 bulk recipients are queued on send.bulk and the bulk lane sends at its capped share of
the account; OTPs are posted meanwhile (one per ``OTP_EVERY`` messages the provider ledgered,
about 10/s while bulk flows at its 700/s). The provider-sim numbers every accepted message
(``seq``), so the test measures each OTP's wait in bulk messages, not in seconds: how many bulk
messages the ledger accepted between the OTP's post and the OTP itself. A transactional message
(``POST /v1/messages``) is posted beside each OTP and held to the same bound: its lane, too, has
its own topic, sender and headroom (it takes from the account bucket only; geo and bulk leave it
``sender_transactional_share``). The backlog outlasts the OTPs (the last is posted after about
3,000 ledgered messages, and must arrive within N more, below), so it is queued throughout;
draining it is not what is tested. The 5M version is a benchmark (BENCHMARKS.md).
"""

from __future__ import annotations

import math
from functools import partial
from itertools import accumulate
from pathlib import Path

import httpx
import pytest

from hexcast.testing import eventually
from sender.models import Lane
from tests.integration.senderkit import ledger, providers_json, sender_world, sim_stats

pytestmark = pytest.mark.e2e

BULK = 20_000
OTPS = 30
OTP_EVERY = 70  # ledgered messages between two OTP posts: 0.1 s of the bulk lane's 700/s
ACCOUNT_RATE = 1000.0  # segments/s of the one provider account (every message is 1 segment)
BULK_SHARE = 0.7
RECORD = 1000  # bulk messages per send.bulk record (senderkit's publish)
SIM_TOKEN = "sim-token"
# A bound on an OTP's own pipeline, post → provider ledger: one broker hop (the consumer's
# fetch waits up to broker_fetch_max_wait_ms, 100 ms), the micro-batch timer (10 ms), a few
# PostgreSQL/Redis round trips and one provider call. BENCHMARKS.md measures it at p99
# 270-565 ms (max 1.6 s in thousands) under bulk loads of 4,400-6,200/s, not 700/s, against a
# target of p99 <= 1 s. A slower OTP still passes unless the bound's worst-case terms (below)
# are reached at the same time; usually they are near zero.
OTP_PIPELINE_S = 1.0


def _otp(api: httpx.Client, n: int) -> str:
    response = api.post("/v1/messages/otp", headers={"Idempotency-Key": f"login-{n}"},
                        json={"phone": f"+1415555{n:04d}", "body": f"Your code is {n:06d}"})
    assert response.status_code == 202, response.text
    key: str = response.json()["message_key"]
    return key


def _transactional(api: httpx.Client, n: int) -> str:
    response = api.post("/v1/messages", headers={"Idempotency-Key": f"order-{n}"},
                        json={"messages": [{"to": f"+1415556{n:04d}", "body": f"Order {n} shipped"}]})
    assert response.status_code == 202, response.text
    key: str = response.json()["messages"][0]["message_key"]
    return key


def _ledger_seq(sim: str, client_ref: str) -> int | None:
    """The ledger's number for a message, None while the provider has not accepted it."""
    found = httpx.get(f"{sim}/v1/messages/by-ref/{client_ref}",
                      headers={"Authorization": f"Bearer {SIM_TOKEN}"}, timeout=10)
    if found.status_code == 404:
        return None
    found.raise_for_status()
    seq: int = found.json()["seq"]
    return seq


def bulk_overtaking_bound(*, bulk_parts: int, bulk_concurrency: int) -> int:
    """N: the most bulk messages the provider may accept between an OTP's post and the OTP.

    The OTP lane shares nothing with the bulk backlog it could queue behind: its own topic
    (send.otp) and consumer group, its own sender process, and its own headroom in the
    account's token bucket (sender/routing.py ``_bucket``): a bulk grant takes from the account
    bucket *and* from the bulk lane's capped bucket, ``sender_bulk_share`` of the rate (and the
    tenant's fair share of that), in one atomic Lua call (sender/lua.py); an otp grant takes
    from the account bucket only, which refills at 1,000/s while bulk takes at most 700/s of
    it. So an OTP waits only for its own pipeline, and the bulk messages the ledger accepts
    meanwhile are bounded by:
    - in flight: bulk messages granted before the post and not yet at the provider. A bulk
      sender works on ``sender_bulk_concurrency`` records at once, cut into
      ``sender_bulk_parts`` slices (sender/dispatch.py ``handle_many``), each holding at most
      one granted provider request at a time, of at most its slice (``_send_chunk``);
    - the bulk bucket: whatever it holds at the post (at most its burst, which is its rate
      for an account with a ``rate_per_s``), plus its refill during the OTP's pipeline.
    A Retry-After pause stops both lanes alike (one pause key on the account bucket); the bulk
    bucket refills meanwhile, at most to the burst already counted.
    With the defaults: 2 × 500 + 700 + 700/s × 1 s = 2,400 of the 20,000.
    """
    bulk_rate = bulk_burst = ACCOUNT_RATE * BULK_SHARE
    in_flight = bulk_concurrency * bulk_parts * math.ceil(RECORD / bulk_parts)
    return math.ceil(in_flight + bulk_burst + bulk_rate * OTP_PIPELINE_S)


def test_otps_and_transactional_messages_overtake_the_bulk_backlog(
    broker_url: str, tmp_path: Path
) -> None:
    """Every OTP and transactional message reaches the provider before the bulk lane has sent
    N more messages.

    N (``bulk_overtaking_bound``: 2,400 here) is looser than what an OTP is usually overtaken
    by, tens of messages: while the bulk lane is held to its rate its bucket stays near empty,
    so its grants, and so its provider requests, are small and frequent, and an OTP is
    overtaken by about its pipeline delay × 700/s. But the bound must hold in every phase of
    the bulk lane: a whole record (two slices of 500) may be granted and on its way when the
    OTP is posted, and the bulk bucket may hold a full burst after a moment the lane could not
    use it (reading or enqueueing its next record). Those are 1,700 of N, whatever the OTP
    does; 700 (one second) is the OTP's own delay. N stays small against the backlog: an OTP
    queued with the bulk records would wait for the over 10,000 bulk messages queued ahead.
    A busy machine barely slows the bulk lane (700/s is a fraction of a core), so what would
    fail this is an OTP pipeline held for seconds while bulk flows.
    """
    with sender_world(broker_url, tmp_path, sim_rate_per_s=ACCOUNT_RATE) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={
            "sender_providers": providers_json(
                {"name": "acct", "url": sim, "token": SIM_TOKEN, "rate_per_s": ACCOUNT_RATE}),
            "sender_bulk_share": BULK_SHARE,
        })
        bound = bulk_overtaking_bound(bulk_parts=world.settings.sender_bulk_parts,
                                      bulk_concurrency=world.settings.sender_bulk_concurrency)
        api = httpx.Client(base_url=world.api(), headers={"X-API-Key": world.api_key}, timeout=10)
        world.sender("sender-bulk", Lane.BULK)
        world.sender("sender-otp", Lane.OTP)
        world.sender("sender-transactional", Lane.TRANSACTIONAL)
        for warm in (_otp(api, 9999), _transactional(api, 9999)):  # each worker has joined
            eventually(partial(_ledger_seq, sim, warm), timeout=60)

        world.publish(BULK, run_id=3)
        eventually(lambda: sim_stats(sim)["total"] > 1000 or None, timeout=60)  # bulk flows
        posted: dict[str, int] = {}  # OTP or transactional key → the ledger's last seq before its post
        last = 0

        def ledgered_since(after: int) -> int | None:
            total = int(sim_stats(sim)["total"])
            return total if total >= after + OTP_EVERY else None

        for n in range(OTPS):
            # Paced by the bulk lane's progress, so bulk is flowing around every OTP.
            last = eventually(partial(ledgered_since, last), timeout=60, every=0.02)
            posted[_otp(api, n)] = last
            posted[_transactional(api, n)] = last

        def arrived() -> dict[str, int] | None:
            seqs = {key: _ledger_seq(sim, key) for key in posted}
            return {k: s for k, s in seqs.items() if s is not None} if all(seqs.values()) else None

        arrival = eventually(arrived, timeout=60)
        items = ledger(sim)
        assert [i["seq"] for i in items] == list(range(1, len(items) + 1))  # seq = position
        bulk_upto = [0, *accumulate(str(i["client_ref"]).startswith("blk-") for i in items)]
        overtaken_by = {key: bulk_upto[arrival[key] - 1] - bulk_upto[before]
                        for key, before in posted.items()}
        assert max(overtaken_by.values()) <= bound, (
            f"bulk messages accepted between a post and its message (N = {bound}): "
            f"{sorted(overtaken_by.values())}")
        assert bulk_upto[max(arrival.values())] < BULK  # the backlog was queued throughout

        refs = [i["client_ref"] for i in items]
        assert len(refs) == len(set(refs))  # nothing sent twice
        assert sim_stats(sim)["duplicates_rejected"] == 0  # nor even offered twice
        assert sum(1 for r in refs if r in posted) == 2 * OTPS  # every one arrived

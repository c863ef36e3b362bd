"""Opt-out, consent and inbound keywords through the real API, broker, sender and provider-sim.

One world for the module (a private database, topics and Redis prefix; a provider-sim, the api,
a bulk and an otp sender): starting it is the expensive part. Each test uses its own phone
numbers, campaign run ids and idempotency keys, and what it reads from the shared metrics it
reads as a difference, so the tests pass alone (``-k``) and in any order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from hexcast.testing import eventually
from sender.keys import bulk_key
from sender.models import Lane, SendBatch, SendRequest
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e

TOTAL = 400
TARGET = 350  # the recipient who replies STOP while their bulk message is still queued
_BARRIER_PHONES = itertools.count(1)


@dataclass(frozen=True)
class Compliance:
    """The module's world, its provider-sim's URL and an api client with the tenant's key."""

    world: SenderWorld
    sim: str
    api: httpx.Client


@pytest.fixture(scope="module")
def env(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compliance]:
    log_dir = tmp_path_factory.mktemp("compliance")
    with sender_world(broker_url, log_dir, sender_bulk_share=0.5) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sim, "token": "sim-token", "rate_per_s": 100.0})})
        api_url = world.api()  # before the senders: they shorten links to its public URL
        world.sender("sender-bulk", Lane.BULK)
        world.sender("sender-otp", Lane.OTP)
        with httpx.Client(base_url=api_url, headers={"X-API-Key": world.api_key},
                          timeout=10) as api:
            yield Compliance(world, sim, api)


def _reply(world: SenderWorld, phone: str, body: str, ref: str) -> dict[str, Any]:
    response = httpx.post(
        f"{world.settings.api_public_url}/v1/webhooks/inbound/{world.tenant_id}",
        json={"from": phone, "body": body, "id": ref},
        headers={"Authorization": f"Bearer {world.settings.dlr_webhook_token}"},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _to(items: list[dict[str, Any]], phone: str) -> list[dict[str, Any]]:
    return [i for i in items if i["to"] == phone]


def _state(api: httpx.Client, key: str) -> str | None:
    response = api.get(f"/v1/messages/{key}")
    return str(response.json()["state"]) if response.status_code == 200 else None


def _counts(env: Compliance) -> tuple[float, float]:
    """The tenant's bulk messages suppressed (the bulk sender's count) and opt-outs (the
    api's: STOP replies), from their processes' ``/metrics``."""
    tenant = str(env.world.tenant_id)
    samples = env.world.scrape("sender-bulk", "api")
    return (samples.value("hexcast_messages_total", tenant=tenant, lane="bulk", state="suppressed"),
            samples.value("hexcast_optouts_total", tenant=tenant))


def _run_states(world: SenderWorld, run_id: int) -> dict[str, int]:
    found = world.scalar(
        "SELECT json_object_agg(state, n) FROM (SELECT state::text, count(*) AS n FROM messages"
        " WHERE campaign_run_id = $1 GROUP BY 1) s", run_id)
    states: dict[str, int] = json.loads(found) if found else {}
    return states


def _otp_lane_drained(env: Compliance) -> None:
    """Wait until the otp sender has worked every record published to ``send.otp`` so far.

    A barrier, not a sleep: one message is published straight to each partition of the otp
    topic, and the wait is for all of them to be accepted. The otp lane is one faust actor
    working a partition's records in offset order, so a barrier message accepted means every
    earlier record of its partition (a reply the api published before it answered, which it
    does only after the broker acknowledged) has been enqueued, deduplicated and sent."""
    world = env.world
    topic = world.settings.topic(Lane.OTP.topic)
    now = datetime.now(UTC)

    async def publish() -> list[str]:
        producer = AIOKafkaProducer(bootstrap_servers=world.settings.bootstrap_servers, acks="all")
        await producer.start()
        try:
            keys = []
            for partition in sorted(await producer.partitions_for(topic)):
                key = f"barrier-{uuid.uuid4().hex}"
                request = SendRequest(message_key=key, tenant_id=world.tenant_id,
                                      phone=f"+1415600{next(_BARRIER_PHONES):04d}", body="barrier",
                                      expires_at=now + timedelta(minutes=10))
                record = SendBatch(lane=Lane.OTP, items=[request], created_at=now).encode()
                await producer.send_and_wait(topic, record, key=key.encode(), partition=partition)
                keys.append(key)
            return keys
        finally:
            await producer.stop()

    for key in asyncio.run(publish()):
        eventually(partial(_accepted, env.api, key), timeout=60)


def _accepted(api: httpx.Client, key: str) -> bool | None:
    return _state(api, key) == "accepted" or None


def test_stop_suppresses_queued_bulk_message(env: Compliance) -> None:
    """A STOP that arrives while the number's bulk message waits in the lane stops it.

    The webhook writes the opt-out (``opt_outs``) in its own transaction before it answers, and
    the bulk sender claims each slice of its chunk (``queued → sending``, sender/repo.py
    ``_CLAIM``) only for rows whose number has no opt-out at that very statement; a row the claim
    leaves is moved to ``suppressed`` with the reason "opted out" (dispatch ``_send_chunk``). The
    bulk lane is capped at half the account's 100/s, so recipient 350 of 400 is still queued
    when the STOP lands after the first 50 sends. The bulk sender counts the suppression and the
    api the opt-out (``hexcast_messages_total``, ``hexcast_optouts_total``, in memory, each on
    its process's ``/metrics``): each grows by exactly one.
    """
    world, run_id = env.world, 5
    phones = {f"+1312{n:07d}" for n in range(TOTAL)}
    target = f"+1312{TARGET:07d}"
    suppressed_before, optouts_before = _counts(env)
    world.publish(TOTAL, run_id=run_id)
    eventually(lambda: sum(i["to"] in phones for i in ledger(env.sim)) >= 50 or None,
               timeout=60)  # bulk is under way

    stop = _reply(world, target, "  stop ", "stop-bulk-1")
    stopped_at = time.time()
    assert stop["kind"] == "opt_out"

    def settled() -> dict[str, int] | None:
        states = _run_states(world, run_id)
        done = states.get("accepted", 0) >= TOTAL - 1 and not states.keys() & {"queued", "sending"}
        return states if done else None

    eventually(settled, timeout=90)
    late = [i for i in _to(ledger(env.sim), target)
            if datetime.fromisoformat(i["accepted_at"]).timestamp() > stopped_at
            and i["body"].startswith("hello")]
    assert late == []
    history = env.api.get(f"/v1/messages/{bulk_key(campaign_run_id=run_id, recipient_id=TARGET)}")
    assert history.json()["state"] == "suppressed"
    assert history.json()["reason"] == "opted out"
    assert _counts(env) == (suppressed_before + 1, optouts_before + 1)


def test_stop_confirmed_once_when_webhook_retried(env: Compliance) -> None:
    """A provider that retries the STOP webhook (same provider id) gets one confirmation out.

    ``record_inbound`` inserts the reply ``ON CONFLICT (tenant_id, provider_ref) DO NOTHING``, so
    the retry is answered ``duplicate``; the api publishes the confirmation again (the first
    publish may have failed) under the same key, ``confirmation_key(tenant, inbound id)``, and the
    sender's enqueue dedupes on the message key, so the second record sends nothing. The barrier
    makes sure both records were worked before the ledger is read."""
    phone = "+14155550010"
    first = _reply(env.world, phone, "  stop ", "stop-retried-1")
    assert _reply(env.world, phone, "  stop ", "stop-retried-1")["duplicate"]  # provider retried
    eventually(lambda: _state(env.api, first["confirmation_key"]) == "accepted" or None,
               timeout=60)
    _otp_lane_drained(env)
    confirmations = [i for i in _to(ledger(env.sim), phone) if "unsubscribed" in i["body"]]
    assert len(confirmations) == 1


def test_free_text_mentioning_stop_is_flagged_without_reply(env: Compliance) -> None:
    """Free text that mentions stopping is flagged for a person and gets no automatic answer.

    ``classify`` (sender/compliance.py) takes a reply as a keyword only when it is exactly one,
    so "Please STOP sending these" is ``other``; ``needs_review`` flags it for the word "stop",
    and ``confirmation_text`` has no text for ``other``, so the webhook publishes nothing. After
    the otp lane is drained, no message was queued for the number and none reached the provider.
    """
    phone = "+14155550000"
    assert _reply(env.world, phone, "Please STOP sending these", "free-text-1")["flagged"]
    _otp_lane_drained(env)
    assert _to(ledger(env.sim), phone) == []  # free text: flagged, no auto reply
    assert env.world.scalar("SELECT count(*) FROM messages WHERE phone = $1", phone) == 0


def test_a_reply_is_threaded_and_a_flagged_one_resolved_as_opt_out(env: Compliance) -> None:
    """A reply names the last message its tenant sent the number (7 days); "please stop texting
    me" waits in the review queue with it; resolved as an opt-out, the number's next bulk
    message is suppressed, and the reply cannot be resolved twice."""
    phone, run_id, recipient = "+13125550950", 8, 950
    env.world.publish_to({recipient: phone}, run_id=run_id, body="Winter sale {n}")
    sent = bulk_key(campaign_run_id=run_id, recipient_id=recipient)
    eventually(lambda: _state(env.api, sent) in ("accepted", "delivered") or None, timeout=60)
    reply = _reply(env.world, phone, "please stop texting me", "thread-1")
    assert (reply["flagged"], reply["reply_to"]) == (True, sent)
    queue = env.api.get("/v1/inbound/flagged", params={"limit": 500}).json()["items"]
    [mine] = [item for item in queue if item["phone"] == phone]
    assert (mine["body"], mine["reply_to"]) == ("please stop texting me", sent)
    resolved = env.api.post(f"/v1/inbound/flagged/{mine['id']}/resolve", json={"action": "opt_out"})
    assert (resolved.status_code, resolved.json()["resolution"]) == (200, "opt_out")
    again = env.api.post(f"/v1/inbound/flagged/{mine['id']}/resolve", json={"action": "dismiss"})
    assert again.status_code == 404
    assert all(i["phone"] != phone
               for i in env.api.get("/v1/inbound/flagged", params={"limit": 500}).json()["items"])
    env.world.publish_to({recipient: phone}, run_id=run_id + 1, body="Winter sale {n}")
    nxt = bulk_key(campaign_run_id=run_id + 1, recipient_id=recipient)
    eventually(lambda: _state(env.api, nxt) == "suppressed" or None, timeout=60)
    assert len(_to(ledger(env.sim), phone)) == 1


def test_a_reply_without_a_recent_message_answers_none(env: Compliance) -> None:
    assert _reply(env.world, "+13125550951", "who is this?", "thread-2")["reply_to"] is None


def test_help_is_answered_once(env: Compliance) -> None:
    """HELP is answered with the tenant's help text, one message.

    ``classify`` maps HELP/INFO to ``help``; the webhook publishes one confirmation (the tenant's
    name and help text) on the otp lane, which confirmations take even to opted-out numbers."""
    phone = "+14155550001"
    help_ = _reply(env.world, phone, "help", "help-1")
    assert help_["kind"] == "help"
    eventually(lambda: _state(env.api, help_["confirmation_key"]) == "accepted" or None,
               timeout=60)
    _otp_lane_drained(env)
    assert len(_to(ledger(env.sim), phone)) == 1  # one help answer


def test_otp_respects_opt_out_until_start(env: Compliance) -> None:
    """OTPs need no marketing consent but respect the tenant's opt-out; START opts back in.

    The enqueue and the claim (sender/repo.py ``_ENQUEUE``, ``_CLAIM``, ``_SUPPRESS``) block a
    non-confirmation message to a number in ``opt_outs`` on every lane; the consent check skips
    the otp lane. START deletes the number's ``opt_outs`` row in the webhook's transaction, so an
    OTP queued after it is sent."""
    phone = "+14155550020"
    _reply(env.world, phone, "STOP", "otp-stop-1")
    otp = env.api.post("/v1/messages/otp", headers={"Idempotency-Key": "optout-otp-1"},
                       json={"phone": phone, "body": "code 1"})
    assert otp.status_code == 202
    key = otp.json()["message_key"]
    eventually(lambda: _state(env.api, key) == "suppressed" or None, timeout=60)
    _reply(env.world, phone, "START", "otp-start-1")
    otp2 = env.api.post("/v1/messages/otp", headers={"Idempotency-Key": "optout-otp-2"},
                        json={"phone": phone, "body": "code 2"})
    eventually(lambda: _state(env.api, otp2.json()["message_key"]) == "accepted" or None,
               timeout=60)


def test_bulk_without_marketing_consent_is_suppressed(env: Compliance) -> None:
    """A bulk (marketing) message to a number with no consent record is suppressed, not sent.

    ``_NO_CONSENT`` (sender/repo.py) blocks every lane but otp unless the tenant's recipient row
    for the number has ``consent_at`` and no ``opted_out_at``; the suppression names the reason."""
    run_id, recipient = 6, TOTAL + 10
    env.world.publish(1, run_id=run_id, first=recipient, consent=False)
    no_consent = bulk_key(campaign_run_id=run_id, recipient_id=recipient)
    eventually(lambda: _state(env.api, no_consent) == "suppressed" or None, timeout=60)
    assert env.api.get(f"/v1/messages/{no_consent}").json()["reason"] == "no marketing consent"


def test_links_become_tracked_short_links(env: Compliance) -> None:
    """Links become tracked short links; prefetchers are redirected but not counted as clicks.

    The sender (``sender_shorten_links``) replaces each URL with ``<api public URL>/r/<code>``
    and stores the code; ``/r/{code}`` redirects every caller (302) and records the click with
    ``bot`` set by ``is_bot`` (sender/links.py): "Slackbot-LinkExpanding" names a bot, the
    iPhone's Safari does not."""
    phone = "+13125550900"
    env.world.publish_to({900: phone}, run_id=7, body="Deals at https://shop.example/d?x={n}.")
    sent = eventually(lambda: _to(ledger(env.sim), phone), timeout=60)[0]["body"]
    short = sent.split(" at ", 1)[1].rstrip(".")
    assert short.startswith(f"{env.world.settings.api_public_url}/r/")
    for agent in ("Slackbot-LinkExpanding 1.0", "Mozilla/5.0 (iPhone) Mobile Safari/604.1"):
        hop = httpx.get(short, headers={"User-Agent": agent}, follow_redirects=False)
        assert hop.status_code == 302
        assert hop.headers["location"] == "https://shop.example/d?x=900"
    code = short.rsplit("/", 1)[1]
    clicks = "SELECT count(*) FROM link_clicks WHERE code = $1 AND bot = $2"
    assert env.world.scalar(clicks, code, False) == 1
    assert env.world.scalar(clicks, code, True) == 1


def test_unknown_short_link_is_not_found(env: Compliance) -> None:
    """A code no message was given is a 404 (``record_click`` finds no link, records nothing)."""
    assert httpx.get(f"{env.world.settings.api_public_url}/r/nope1234").status_code == 404


def test_otp_refuses_bad_input(env: Compliance) -> None:
    """A bad OTP request is a 422 naming what is wrong: the missing Idempotency-Key header, a
    phone not in E.164, a zero TTL, a body longer than the tenant's segments (1,000 characters is
    a valid length but 7 segments; the tenant allows 6), an unknown field (the models forbid
    extra fields)."""
    ok = {"phone": "+14155550100", "body": "code"}
    missing = env.api.post("/v1/messages/otp", json=ok)
    assert missing.status_code == 422
    assert "Idempotency-Key" in missing.text
    for body, field in (({**ok, "phone": "4155550100"}, "phone"), ({**ok, "ttl_s": 0}, "ttl_s"),
                        ({**ok, "body": "x" * 1000}, "body"), ({**ok, "extra": 1}, "extra")):
        response = env.api.post("/v1/messages/otp", json=body, headers={"Idempotency-Key": "bad"})
        assert response.status_code == 422, response.text
        assert field in response.text
        if field == "body":  # a valid length, but 7 segments: the tenant allows 6
            assert "this tenant allows 6" in response.text


def test_inbound_webhook_needs_the_token(env: Compliance) -> None:
    """The inbound webhook without the provider's bearer token is a 401 (``_check_webhook``)."""
    unauthorised = httpx.post(f"{env.world.settings.api_public_url}/v1/webhooks/inbound/1",
                              json={"from": "+14155550100", "body": "STOP"})
    assert unauthorised.status_code == 401

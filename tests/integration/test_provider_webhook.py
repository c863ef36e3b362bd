"""``/v1/webhooks/providers/{route}`` on a real api process: a callback signed as Twilio signs
is taken and kept; a forged one, or the right one replayed to another URL, is a 401 and
nothing is kept; an unknown route is a 404; an unreadable body from a signed sender a 422.

Replays, per scheme: Telnyx, Sinch and Vonage sign a timestamp, and a rightly signed callback
older than the scheme's tolerance is a 401 that keeps nothing and leaves its message as it was;
Twilio and Plivo sign none, so the same callback posted twice verifies twice and the second
changes nothing. The callbacks are signed with the simulator's signers (``providersim``), not
with the verifiers they test."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import NamedTuple
from urllib.parse import parse_qs, urlencode

import asyncpg
import httpx
import pytest

from hexcast.testing import fetch_rows, make_tenant
from providersim.dialects import plivo as sim_plivo
from providersim.dialects import sinch as sim_sinch
from providersim.dialects import telnyx as sim_telnyx
from providersim.dialects import vonage as sim_vonage
from sender import repo
from sender.models import Lane, SendRequest
from sender.providers import sinch, telnyx, vonage
from sender.providers.twilio import sign
from tests.integration.apiproc import RunningApi, running_api

TOKEN = "twilio-auth-token"
FORM = {"MessageSid": "SM0123456789abcdef0123456789abcdef", "MessageStatus": "delivered",
        "To": "+13125550100", "AccountSid": "AC1"}
SIGNING = "hook-signing-key"  # Sinch's and Vonage's shared secret; the seed of Telnyx's key
PLIVO_TOKEN = "plivo-auth-token"
PHONE = "+13125550142"
FORM_TYPE = {"content-type": "application/x-www-form-urlencoded"}
JSON_TYPE = {"content-type": "application/json"}
ROUTES = [
    {"name": "tw-hook", "kind": "twilio", "token": TOKEN, "account": "AC1"},
    {"name": "pl-hook", "kind": "plivo", "token": PLIVO_TOKEN, "account": "MA1"},
    {"name": "tx-hook", "kind": "telnyx", "token": "KEY1",
     "webhook_key": sim_telnyx.public_key(SIGNING)},
    {"name": "sn-hook", "kind": "sinch", "token": "bearer", "account": "plan1",
     "webhook_key": SIGNING},
    {"name": "vg-hook", "kind": "vonage", "token": "secret", "account": "key1",
     "webhook_key": SIGNING},
]
Signed = tuple[dict[str, str], bytes]  # a callback's headers and body


@pytest.fixture(scope="module")
def api(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[RunningApi]:
    routes = [{**r, "url": "http://127.0.0.1:9", "sender_id": "+13125550199"} for r in ROUTES]
    with running_api(broker_url, database_url, tmp_path_factory.mktemp("api"),
                     sender_providers=json.dumps(routes)) as running:
        yield running


def _post(api: RunningApi, query: str, signed_for: str | None = None) -> httpx.Response:
    path = f"/v1/webhooks/providers/tw-hook{query}"
    body = urlencode(FORM)
    url = signed_for or f"{api.url}{path}"
    signature = sign(TOKEN.encode(), url, parse_qs(body))
    return httpx.post(f"{api.url}{path}", content=body, timeout=10, headers={
        "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature})


def _kept(api: RunningApi, ref: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(api.settings.database_url)
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FROM provider_receipts WHERE provider = 'tw-hook' AND ref = $1", ref))
        finally:
            await conn.close()

    return asyncio.run(count())


def test_a_signed_callback_is_kept(api: RunningApi) -> None:
    answer = _post(api, "?ref=hook-msg-1")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 1, "applied": 0}  # no such message: it waits
    assert _kept(api, "hook-msg-1") == 1


def test_a_forged_or_replayed_callback_is_refused_and_nothing_kept(api: RunningApi) -> None:
    forged = httpx.post(f"{api.url}/v1/webhooks/providers/tw-hook?ref=hook-msg-2",
                        content=urlencode(FORM), timeout=10, headers={
                            "content-type": "application/x-www-form-urlencoded",
                            "x-twilio-signature": "bm90IGEgc2lnbmF0dXJl"})
    assert forged.status_code == 401
    replayed = _post(api, "?ref=hook-msg-2", signed_for=f"{api.url}/v1/webhooks/providers/tw-hook"
                                                        "?ref=other-message")
    assert replayed.status_code == 401
    assert _kept(api, "hook-msg-2") == 0


def test_an_unknown_route_is_a_404(api: RunningApi) -> None:
    answer = httpx.post(f"{api.url}/v1/webhooks/providers/nope", content=b"x=1", timeout=10,
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 404


class Seen(NamedTuple):
    """What a callback could change: the message (state, reason, how many moves its history
    has) and every column of the receipts kept for it."""

    state: str
    reason: str | None
    events: int
    receipts: list[tuple[object, ...]]


def _accepted(api: RunningApi, route: str, pmid: str) -> str:
    """A message to :data:`PHONE` of a new tenant, accepted by ``route`` as ``pmid``; its key."""
    async def run() -> str:
        tenant = await make_tenant(api.settings.database_url, prefix="hook", consenting=[PHONE])
        item = SendRequest(message_key=f"hook-{tenant.id}-{route}", tenant_id=tenant.id,
                           phone=PHONE, body="Hi")
        conn = await asyncpg.connect(api.settings.database_url)
        try:
            [row], _ = await repo.enqueue(conn, lane=Lane.GEO, items=[item], actor="test")
            await repo.claim_for_sending(conn, ids=[row.id], provider=route, actor="test",
                                         reason="calling")
            await repo.mark_accepted(conn, accepted=[(row.id, pmid)], actor="test")
            return row.message_key
        finally:
            await conn.close()

    return asyncio.run(run())


def _seen(api: RunningApi, route: str, key: str, pmid: str) -> Seen:
    dsn = api.settings.database_url
    [message] = asyncio.run(fetch_rows(
        dsn, "SELECT m.state::text AS state, m.reason, (SELECT count(*) FROM message_events e"
        " WHERE e.message_id = m.id) AS events FROM messages m WHERE m.message_key = $1", key))
    receipts = asyncio.run(fetch_rows(
        dsn, "SELECT * FROM provider_receipts WHERE provider = $1 AND ref IN ($2, $3)"
        " ORDER BY ref, part", route, key, pmid))
    return Seen(message["state"], message["reason"], message["events"],
                [tuple(r) for r in receipts])


def _deliver(api: RunningApi, route: str, signed: Signed, query: str = "") -> httpx.Response:
    headers, body = signed
    return httpx.post(f"{api.url}/v1/webhooks/providers/{route}{query}", content=body,
                      headers=headers, timeout=10)


def _telnyx(pmid: str, stamp: int) -> Signed:
    body = json.dumps({"data": {"event_type": "message.finalized", "payload": {
        "id": pmid, "to": [{"phone_number": PHONE, "status": "delivered"}], "errors": []}}}
                      ).encode()
    signature = sim_telnyx.private_key(SIGNING).sign(f"{stamp}|".encode() + body)
    return {**JSON_TYPE, "telnyx-timestamp": str(stamp),
            "telnyx-signature-ed25519": base64.b64encode(signature).decode()}, body


def _sinch(pmid: str, stamp: int) -> Signed:
    batch_id, recipient = pmid.split(":")
    body = json.dumps({"type": "recipient_delivery_report_sms", "batch_id": batch_id,
                       "recipient": recipient, "status": "Delivered", "code": 0}).encode()
    nonce = secrets.token_hex(16)
    return {**JSON_TYPE, "x-sinch-webhook-signature-algorithm": "HmacSHA256",
            "x-sinch-webhook-signature-nonce": nonce,
            "x-sinch-webhook-signature-timestamp": str(stamp),
            "x-sinch-webhook-signature": sim_sinch.sign(SIGNING, body, nonce=nonce,
                                                        timestamp=str(stamp))}, body


def _vonage(pmid: str, stamp: int) -> Signed:
    params = {"msisdn": PHONE[1:], "to": "13125550199", "messageId": pmid,
              "status": "delivered", "err-code": "0", "timestamp": str(stamp),
              "nonce": str(uuid.uuid4())}
    return JSON_TYPE, json.dumps({**params, "sig": sim_vonage.sign(params, SIGNING)}).encode()


STAMPED: dict[str, tuple[Callable[[], str], Callable[[str, int], Signed], float]] = {
    # route: (a new provider message id, its signed "delivered" callback at a time, tolerance)
    "tx-hook": (lambda: str(uuid.uuid4()), _telnyx, telnyx.MAX_SKEW_S),
    "sn-hook": (lambda: sinch.message_id(f"01{uuid.uuid4().hex[:24].upper()}", PHONE), _sinch,
                sinch.SIGNATURE_TOLERANCE_S),
    "vg-hook": (lambda: uuid.uuid4().hex[:16].upper(), _vonage, vonage.MAX_AGE_S),
}


@pytest.mark.parametrize("route", list(STAMPED))
def test_a_callback_signed_longer_ago_than_the_tolerance_is_refused_and_changes_nothing(
    api: RunningApi, route: str,
) -> None:
    """A rightly signed callback whose signed timestamp is past the scheme's tolerance (a
    replay) is a 401: no receipt kept, the message still accepted with the same history. The
    same callback signed now is taken and delivers it (what refused the first was its age)."""
    new_id, signed, tolerance = STAMPED[route]
    pmid = new_id()
    key = _accepted(api, route, pmid)
    before = _seen(api, route, key, pmid)
    assert (before.state, before.receipts) == ("accepted", [])
    stale = _deliver(api, route, signed(pmid, int(time.time() - tolerance - 60)))
    assert stale.status_code == 401, stale.text
    assert _seen(api, route, key, pmid) == before
    fresh = _deliver(api, route, signed(pmid, int(time.time())))
    assert (fresh.status_code, fresh.json()) == (200, {"received": 1, "applied": 1})
    assert _seen(api, route, key, pmid).state == "delivered"


def _twilio(api: RunningApi, pmid: str, query: str) -> Signed:
    body = urlencode({"MessageSid": pmid, "MessageStatus": "delivered", "To": PHONE,
                      "AccountSid": "AC1"})
    url = f"{api.url}/v1/webhooks/providers/tw-hook{query}"
    return {**FORM_TYPE, "x-twilio-signature": sign(TOKEN.encode(), url, parse_qs(body))}, \
        body.encode()


def _plivo(api: RunningApi, pmid: str, query: str) -> Signed:
    form = {"MessageUUID": pmid, "Status": "delivered", "To": PHONE[1:], "From": "13125550199",
            "Units": "1", "Type": "sms"}
    nonce = str(secrets.randbelow(10**20)).zfill(20)
    url = f"{api.url}/v1/webhooks/providers/pl-hook{query}"
    return {**FORM_TYPE, "x-plivo-signature-v3": sim_plivo.sign_v3(PLIVO_TOKEN, url, nonce, form),
            "x-plivo-signature-v3-nonce": nonce}, urlencode(form).encode()


UNSTAMPED: dict[str, tuple[Callable[[], str], Callable[[RunningApi, str, str], Signed]]] = {
    "tw-hook": (lambda: f"SM{uuid.uuid4().hex}", _twilio),
    "pl-hook": (lambda: str(uuid.uuid4()), _plivo),
}


@pytest.mark.parametrize("route", list(UNSTAMPED))
def test_the_same_callback_posted_twice_changes_nothing_the_second_time(
    api: RunningApi, route: str,
) -> None:
    """Twilio's and Plivo's schemes sign no time (Plivo's nonce is not remembered), so a
    replayed callback verifies: the first post delivers the message, the second is answered
    200 and changes nothing, neither the message nor its kept receipt."""
    new_id, signed = UNSTAMPED[route]
    pmid = new_id()
    key = _accepted(api, route, pmid)
    before = _seen(api, route, key, pmid)
    callback, query = signed(api, pmid, f"?ref={key}"), f"?ref={key}"
    first = _deliver(api, route, callback, query)
    assert (first.status_code, first.json()) == (200, {"received": 1, "applied": 1})
    after = _seen(api, route, key, pmid)
    assert (after.state, after.events, len(after.receipts)) == ("delivered", before.events + 1, 1)
    second = _deliver(api, route, callback, query)
    assert (second.status_code, second.json()) == (200, {"received": 1, "applied": 0})
    assert _seen(api, route, key, pmid) == after

"""``/v1/webhooks/providers/{route}`` on a real api process: a callback signed as Twilio signs
is taken and kept; a forged one, or the right one replayed to another URL, is a 401 and
nothing is kept; an unknown route is a 404; an unreadable body from a signed sender a 422."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode

import asyncpg
import httpx
import pytest

from sender.providers.twilio import sign
from tests.integration.apiproc import RunningApi, running_api

TOKEN = "twilio-auth-token"
FORM = {"MessageSid": "SM0123456789abcdef0123456789abcdef", "MessageStatus": "delivered",
        "To": "+13125550100", "AccountSid": "AC1"}


@pytest.fixture(scope="module")
def api(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[RunningApi]:
    route = {"name": "tw-hook", "kind": "twilio", "url": "http://127.0.0.1:9", "token": TOKEN,
             "account": "AC1", "sender_id": "+13125550199"}
    with running_api(broker_url, database_url, tmp_path_factory.mktemp("api"),
                     sender_providers=json.dumps([route])) as running:
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

"""Signed webhook requests (``sender.webhooks.signing``, ``delivery.build_request``), checked by
the independent ``standardwebhooks`` library; Retry-After; the endpoint models."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from sender.webhooks.delivery import build_request, retry_after_s
from sender.webhooks.models import EndpointCreate, EndpointUpdate, ReplayCreate
from sender.webhooks.signing import batch_id, new_secret, sign

EVENT = {"type": "message.delivered", "timestamp": "2026-12-07T10:00:00.000000Z",
         "data": {"message_key": "k1", "phone": "+13125550100", "sequence": 6}}


def _row(event_id: str, secret: str, old: str | None = None, payload: Any = EVENT) -> dict[str, Any]:
    return {"event_id": event_id, "payload": payload, "secret": secret, "old_secret": old}


@given(st.text(), st.binary(max_size=300))
def test_signatures_verify_with_standardwebhooks(text: str, body: bytes) -> None:
    secret = new_secret()
    now = int(time.time())
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now),
               "webhook-signature": sign(secret, "evt_1", now, body)}
    Webhook(secret).verify(body, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers, json_parse=False)


def test_a_single_event_is_the_body_under_its_own_id() -> None:
    secret = new_secret()
    request = build_request([_row("evt_a", secret)], now_s=int(time.time()))
    assert request.webhook_id == "evt_a"
    assert Webhook(secret).verify(request.body, request.headers) == EVENT


def test_during_a_rotation_both_secrets_verify() -> None:
    old, new = new_secret(), new_secret()
    request = build_request([_row("evt_a", new, old)], now_s=int(time.time()))
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(request.body, request.headers)["type"] == "message.delivered"


def test_a_batch_is_an_array_of_events_with_their_ids() -> None:
    secret = new_secret()
    rows = [_row(f"evt_{i}", secret) for i in range(3)]
    request = build_request(rows, now_s=int(time.time()))
    events = Webhook(secret).verify(request.body, request.headers)
    assert [e["id"] for e in events] == ["evt_0", "evt_1", "evt_2"]
    assert request.webhook_id == batch_id(["evt_0", "evt_1", "evt_2"]) != batch_id(["evt_0"])
    assert json.loads(request.body)[0]["data"] == EVENT["data"]


def test_retry_after_as_seconds_or_a_date() -> None:
    now = time.time()
    assert retry_after_s("120", now_s=now) == 120.0
    assert 55 <= (retry_after_s(formatdate(now + 60, usegmt=True), now_s=now) or 0) <= 61
    assert retry_after_s("soon", now_s=now) is None
    assert retry_after_s(None, now_s=now) is None


def test_endpoint_models() -> None:
    created = EndpointCreate(url="https://hooks.example.com/x",
                             event_types=["message.failed", "message.failed"])
    assert created.event_types == ["message.failed"]
    assert created.batch_size == 1
    for bad in ({"url": "ftp://x.example/", "event_types": ["message.failed"]},
                {"url": "https://x.example/", "event_types": []},
                {"url": "https://x.example/", "event_types": ["message.sent"]},
                {"url": "https://x.example/", "event_types": ["message.failed"], "batch_size": 101}):
        with pytest.raises(ValidationError):
            EndpointCreate.model_validate(bad)
    with pytest.raises(ValidationError):
        EndpointUpdate.model_validate({})
    with pytest.raises(ValidationError):
        EndpointUpdate.model_validate({"url": None})
    assert EndpointUpdate(enabled=True).changes() == {"enabled": True}
    with pytest.raises(ValidationError):
        ReplayCreate.model_validate({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"})

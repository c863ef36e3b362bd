"""``hexcast webhook-listen``'s checks (pure): it accepts what the worker signs, with either
secret during a rotation, and nothing else."""

from __future__ import annotations

import json

from sender.webhooks.listen import describe, verified
from sender.webhooks.signing import new_secret, signature_header

NOW = 1_800_000_000


def _headers(secrets: list[str], body: bytes, *, at: int = NOW) -> dict[str, str]:
    return {"webhook-id": "evt_1", "webhook-timestamp": str(at),
            "webhook-signature": signature_header(secrets, "evt_1", at, body)}


def test_a_signed_request_verifies_with_either_secret_of_a_rotation() -> None:
    old, new = new_secret(), new_secret()
    body = json.dumps({"type": "message.delivered", "data": {"message_key": "msg-1"}}).encode()
    headers = _headers([new, old], body)
    assert verified(old, headers, body, now=NOW)
    assert verified(new, headers, body, now=NOW + 299)
    assert not verified(new_secret(), headers, body, now=NOW)
    assert not verified(new, headers, body + b" ", now=NOW)  # tampered
    assert not verified(new, headers, body, now=NOW + 301)  # stale: a replay
    assert not verified(new, {}, body, now=NOW)


def test_each_event_of_a_batch_is_described() -> None:
    batch = [{"type": "message.accepted", "data": {"message_key": "k1"}},
             {"type": "optout.created", "data": {"phone": "+13125550100"}}]
    assert describe(json.dumps(batch).encode()) == ["message.accepted k1", "optout.created"]

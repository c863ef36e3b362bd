"""POST /v1/messages, the pure part: the request schema, and the messages a batch becomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hexcast.core.errors import InvalidInput
from sender.keys import message_key
from sender.models import Lane, MessageState
from sender.submissions import (
    MAX_BATCH,
    MAX_SEND_AHEAD,
    OTP_VALIDITY,
    MessageBatchCreate,
    MessageCreate,
    plan_messages,
)

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
TEMPLATES = {7: "Order {order} ships {day}."}


def _item(**fields: Any) -> MessageCreate:
    return MessageCreate.model_validate({"to": "+13125550100", **fields})


def _plan(items: list[MessageCreate], *, key: str = "req-1", max_segments: int = 6) -> list[Any]:
    return plan_messages(items, tenant_id=3, idempotency_key=key, templates=TEMPLATES,
                         max_segments=max_segments, now=NOW)


def test_a_message_defaults_to_the_transactional_lane_and_may_use_otp() -> None:
    assert _item(body="Your order shipped").lane is Lane.TRANSACTIONAL
    assert _item(body="Code 123456", lane="otp").lane is Lane.OTP


@pytest.mark.parametrize("fields", [
    {"body": "x", "lane": "bulk"},  # campaigns' lanes are not for this route
    {"body": "x", "lane": "geo"},
    {},  # neither body nor template
    {"body": "x", "template_id": 7},  # both
    {"body": "x", "variables": {"a": "b"}},  # variables without a template
    {"body": "x", "client_reference": "r" * 129},
    {"body": "x", "validity_period": 9},
    {"body": "x", "send_at": "2026-11-28T10:00:00"},  # no offset
    {"template_id": 7, "variables": {"not-a-name": "x"}},
    {"to": "3125550100", "body": "x"},
])
def test_bad_messages_are_refused_by_the_schema(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MessageCreate.model_validate({"to": "+13125550100", **fields})


def test_a_batch_holds_one_to_a_thousand_messages() -> None:
    one = {"to": "+13125550100", "body": "x"}
    assert len(MessageBatchCreate.model_validate({"messages": [one] * MAX_BATCH}).messages) == MAX_BATCH
    for size in (0, MAX_BATCH + 1):
        with pytest.raises(ValidationError):
            MessageBatchCreate.model_validate({"messages": [one] * size})


@given(size=st.integers(1, 30), key=st.text(min_size=1, max_size=20))
def test_keys_derive_from_tenant_idempotency_key_and_index(size: int, key: str) -> None:
    planned = _plan([_item(body=f"m{i}") for i in range(size)], key=key)
    keys = [p.request.message_key for p in planned]
    assert keys == [message_key(tenant_id=3, idempotency_key=key, index=i) for i in range(size)]
    assert len(set(keys)) == size
    assert keys == [p.request.message_key for p in _plan([_item(body="other")] * size, key=key)]
    assert [p.index for p in planned] == list(range(size))


@given(validity=st.integers(10, 259_200), ahead_s=st.one_of(st.none(), st.integers(1, 30 * 86400)))
def test_validity_period_runs_from_when_the_message_is_due(validity: int, ahead_s: int | None) -> None:
    send_at = None if ahead_s is None else NOW + timedelta(seconds=ahead_s)
    [p] = _plan([_item(body="x", validity_period=validity, send_at=send_at)])
    assert p.request.expires_at == (send_at or NOW) + timedelta(seconds=validity)
    assert p.send_at == send_at
    assert p.accepted(MessageState.DEFERRED).expires_at == p.request.expires_at


def test_without_validity_a_transactional_message_never_expires_and_an_otp_lapses() -> None:
    [txn, otp] = _plan([_item(body="x"), _item(body="y", lane="otp")])
    assert txn.request.expires_at is None
    assert otp.request.expires_at == NOW + OTP_VALIDITY


@pytest.mark.parametrize("send_at", [NOW, NOW - timedelta(seconds=1),
                                     NOW + MAX_SEND_AHEAD + timedelta(seconds=1)])
def test_send_at_is_in_the_future_and_at_most_30_days_ahead(send_at: datetime) -> None:
    with pytest.raises(InvalidInput) as err:
        _plan([_item(body="ok"), _item(body="x", send_at=send_at)])
    assert err.value.field == "body.messages.1.send_at"


def test_a_template_is_filled_with_the_variables() -> None:
    [p] = _plan([_item(template_id=7, variables={"order": "A-17", "day": "today"},
                       client_reference="order-A-17")])
    assert p.request.body == "Order A-17 ships today."
    assert p.client_reference == "order-A-17"
    assert p.segments == 1


@pytest.mark.parametrize(("fields", "field"), [
    ({"template_id": 8}, "template_id"),  # not one of the tenant's
    ({"template_id": 7, "variables": {"order": "A-17"}}, "variables"),  # {day} has no value
    ({"template_id": 7, "variables": {"order": "x" * 1600, "day": "y"}}, "variables"),
    ({"body": "ж" * 67 * 3 + "ж"}, "body"),  # 4 UCS-2 segments; the tenant allows 3
])
def test_a_bad_item_is_named_by_its_index_and_field(fields: dict[str, Any], field: str) -> None:
    items = [_item(body="fine"), _item(body="fine too"), _item(**fields)]
    with pytest.raises(InvalidInput) as err:
        _plan(items, max_segments=3)
    assert err.value.field == f"body.messages.2.{field}"
    assert str(err.value).startswith("messages[2]: ")

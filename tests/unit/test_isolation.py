"""Poison isolation's two halves, without I/O: the item-by-item screen of records read from
topics, and the bisecting fallback that finds the items a group fails on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from hexcast.core.deadletter import DeadLetter, dead_letter
from hexcast.core.isolation import isolate
from hexcast.core.logging import get_logger
from sender.isolation import send_isolated
from sender.models import MAX_CHUNK, ReceiptBatch, SendBatch
from sender.outcome import Outcome
from streams.models import VisitRecord

log = get_logger("test")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).isoformat()


def _send(*bodies: str) -> dict[str, Any]:
    return {"v": 1, "lane": "otp", "created_at": NOW, "items": [
        {"message_key": f"key-{n:05d}", "tenant_id": 1, "phone": "+13125550001", "body": body}
        for n, body in enumerate(bodies)]}


def test_a_valid_record_is_decoded_as_before() -> None:
    raw = json.dumps(_send("a", "b")).encode()
    screened = SendBatch.screen(raw)
    assert screened.record == SendBatch.decode(raw)
    assert screened.refused == []


def test_a_nul_refuses_its_item_alone_naming_it() -> None:
    screened = SendBatch.screen(json.dumps(_send("a", "b\x00c", "d")).encode())
    assert screened.record is not None
    assert [i.body for i in screened.record.items] == ["a", "d"]
    [(payload, why)] = screened.refused
    assert "key-00001" in why
    assert "NUL (\\u0000) at position 1" in why
    alone = json.loads(payload)
    assert [i["message_key"] for i in alone["items"]] == ["key-00001"]
    assert alone["lane"] == "otp"  # the rest of the record, to replay it


def test_raw_undecodable_bytes_refuse_their_item_alone() -> None:
    raw = json.dumps(_send("a", "@@", "d")).encode().replace(b"@@", b"x\xed\xa0\x80\xff")
    screened = SendBatch.screen(raw)
    assert screened.record is not None
    assert [i.body for i in screened.record.items] == ["a", "d"]
    [(_, why)] = screened.refused
    assert "lone surrogate (\\udced) at position 1" in why


def test_a_bad_envelope_or_bad_json_refuses_the_record_as_read() -> None:
    bad_lane = json.dumps({**_send("a"), "lane": "carrier-pigeon"}).encode()
    for raw in (bad_lane, b'{"lane": "otp", "items": [', b"\xff"):
        screened = SendBatch.screen(raw)
        assert screened.record is None
        assert [p for p, _ in screened.refused] == [raw]


def test_every_item_bad_leaves_no_record_and_a_refusal_each() -> None:
    screened = SendBatch.screen(json.dumps(_send("\x00", "", "\ud800")).encode())
    assert screened.record is None
    assert len(screened.refused) == 3


def test_a_visit_records_own_text_refuses_the_record() -> None:
    record = {"v": 1, "tenant_id": 1, "user_id": "u\x00", "received_at": NOW, "events": [
        {"event_id": "e1", "lat": 41.9, "lng": -87.6, "accuracy_m": 10, "ts": NOW}]}
    screened = VisitRecord.screen(json.dumps(record).encode())
    assert screened.record is None
    assert "user_id" in screened.refused[0][1]


def test_a_visit_event_out_of_range_is_refused_alone() -> None:
    event = {"lat": 41.9, "lng": -87.6, "accuracy_m": 10, "ts": NOW}
    record = {"v": 1, "tenant_id": 1, "user_id": "u", "received_at": NOW, "events": [
        {**event, "event_id": "far", "lat": 1000}, {**event, "event_id": "ok"}]}
    screened = VisitRecord.screen(json.dumps(record).encode())
    assert screened.record is not None
    assert [e.event_id for e in screened.record.events] == ["ok"]
    assert "far" in screened.refused[0][1]


def test_a_receipt_batch_sets_bad_receipts_aside() -> None:
    receipt = {"provider_message_id": "p", "status": "delivered", "at": NOW}
    batch = ReceiptBatch.model_validate({"receipts": [
        {**receipt, "client_ref": "ok"}, {**receipt, "client_ref": "x\x00"}, {"client_ref": "half"}]})
    assert [r.client_ref for r in batch.receipts] == ["ok"]
    assert [item["client_ref"] for item, _ in batch.refused] == ["x\x00", "half"]
    with pytest.raises(ValidationError):  # the batch's own bound still holds
        ReceiptBatch.model_validate({"receipts": [{**receipt, "client_ref": "ok"}] * (MAX_CHUNK + 1)})


def test_a_letter_is_written_whatever_its_reason_holds() -> None:
    letter = DeadLetter.decode(dead_letter("t", b"k\xff", "why \ud800 \x00", b"p\xed\xa0\x80"))
    assert letter.reason == "why \\ud800 \x00"
    assert letter.key == "k\ufffd"


async def test_isolate_finds_the_items_a_group_fails_on() -> None:
    groups: list[list[int]] = []

    async def run(group: list[int]) -> list[int]:
        groups.append(group)
        if 3 in group or 11 in group:
            raise ValueError("poison")
        return group

    done, failed = await isolate(list(range(16)), run, log=log, event="test")
    assert sorted(i for group in done for i in group) == [i for i in range(16) if i not in (3, 11)]
    assert failed == [(3, "ValueError: poison"), (11, "ValueError: poison")]
    assert len(groups) <= 1 + 2 * 2 * 4  # the whole, then two halves per level per poison


async def test_isolate_runs_once_when_nothing_fails_and_not_again_when_told() -> None:
    groups: list[list[int]] = []

    async def run(group: list[int]) -> int:
        groups.append(group)
        return len(group)

    assert await isolate([1, 2, 3], run, log=log, event="test") == ([3], [])
    assert groups == [[1, 2, 3]]
    groups.clear()
    done, failed = await isolate([1, 2, 3], run, log=log, event="test", tried=ValueError("x"))
    assert (sorted(done), failed, groups) == ([1, 2], [], [[1], [2, 3]])


async def test_isolate_lets_outages_through() -> None:
    async def run(group: list[int]) -> int:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await isolate([1, 2], run, log=log, event="test", passthrough=(ConnectionError,))


class _Dispatcher:
    """Stands in for the dispatcher: fails a group holding a message of ``poison`` (or every
    group), and reports the messages of ``gave_up`` as failed for good."""

    def __init__(self, poison: set[str], gave_up: set[str], *, broken: bool = False) -> None:
        self.poison, self.gave_up, self.broken = poison, gave_up, broken
        self.sent: list[str] = []

    async def handle_many(self, batches: list[SendBatch]) -> Outcome:
        keys = [i.message_key for b in batches for i in b.items]
        if self.broken or self.poison & set(keys):
            raise ValueError("refused")
        self.sent += keys
        outcome = Outcome()
        outcome.dead = {k: "gave up" for k in keys if k in self.gave_up}
        return outcome


def _taken(*records: list[str]) -> list[tuple[bytes | None, SendBatch]]:
    return [(f"r{n}".encode(), SendBatch.model_validate({**_send(), "items": [
        {"message_key": k, "tenant_id": 1, "phone": "+13125550001", "body": "x"} for k in keys]}))
        for n, keys in enumerate(records)]


async def test_a_group_failing_on_one_message_sends_the_others_and_letters_it_alone() -> None:
    taken = _taken(["message-a1", "message-bad", "message-a2"], ["message-b1", "message-late"])
    dispatcher = _Dispatcher({"message-bad"}, {"message-late"})
    _, letters = await send_isolated(dispatcher, taken)  # type: ignore[arg-type]
    assert sorted(dispatcher.sent) == ["message-a1", "message-a2", "message-b1", "message-late"]
    by_record = {(key, tuple(i["message_key"] for i in json.loads(p)["items"])): why
                 for key, p, why in letters}
    assert set(by_record) == {(b"r0", ("message-bad",)), (b"r1", ("message-late",))}
    assert "message-bad" in by_record[b"r0", ("message-bad",)]
    assert by_record[b"r1", ("message-late",)] == "gave up"


async def test_a_group_failing_on_every_message_makes_one_letter_per_record() -> None:
    taken = _taken(["message-a1", "message-a2", "message-a3"], ["message-b1"])
    _, letters = await send_isolated(_Dispatcher(set(), set(), broken=True), taken)  # type: ignore[arg-type]
    assert [(key, len(json.loads(p)["items"])) for key, p, _ in letters] == [(b"r0", 3), (b"r1", 1)]

"""Delivery receipt texts and TLVs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hexcast.core.smpp.pdu import MESSAGE_STATE, RECEIPTED_MESSAGE_ID
from hexcast.core.smpp.receipt import (
    STAT_STATE,
    STATS,
    MessageState,
    ReceiptText,
    format_receipt,
    parse_receipt,
    read_receipt_tlvs,
    receipt_date,
    receipt_tlvs,
)


def test_known_text() -> None:
    r = ReceiptText("1a2b", submit_date=receipt_date(datetime(2024, 3, 9, 14, 5, tzinfo=UTC)),
                    done_date="2403091406", stat="UNDELIV", err="027", text="Your code is 1234, valid")
    assert format_receipt(r) == ("id:1a2b sub:001 dlvrd:001 submit date:2403091405 "
                                 "done date:2403091406 stat:UNDELIV err:027 Text:Your code is 1234, v")


_value = st.text(alphabet="0123456789abcdefABCDEF-", min_size=1, max_size=20)


@given(_value, st.sampled_from(sorted(STATS)), st.text(max_size=30))
def test_round_trip(message_id: str, stat: str, text: str) -> None:
    r = ReceiptText(message_id, "001", "000", "2401010000", "2401010001", stat, "000", text)
    parsed = parse_receipt(format_receipt(r))
    assert parsed == ReceiptText(message_id, "001", "000", "2401010000", "2401010001", stat,
                                 "000", text[:20].strip())


def test_tolerant_parsing() -> None:
    parsed = parse_receipt("STAT:delivrd   Done_Date:2401010001 ID:77  err:0")
    assert (parsed.id, parsed.stat, parsed.done_date, parsed.err, parsed.text) == (
        "77", "DELIVRD", "2401010001", "0", "")
    early_text = parse_receipt("text:hello there id:5 stat:EXPIRED")
    assert (early_text.id, early_text.stat, early_text.text) == ("5", "EXPIRED", "hello there")
    tricky = parse_receipt("id:9 stat:DELIVRD Text:stat:REJECTD id:1")
    assert (tricky.id, tricky.stat, tricky.text) == ("9", "DELIVRD", "stat:REJECTD id:1")


@pytest.mark.parametrize("text", ["", "hello", "sub:001 stat:DELIVRD", "id:5 err:000"])
def test_not_a_receipt(text: str) -> None:
    with pytest.raises(ValueError, match="not a delivery receipt"):
        parse_receipt(text)


def test_states_and_tlvs() -> None:
    assert STAT_STATE["DELIVRD"] is MessageState.DELIVERED
    assert STAT_STATE["REJECTD"] is MessageState.REJECTED
    assert [int(s) for s in MessageState] == list(range(1, 9))
    tlvs = receipt_tlvs("00ff", MessageState.UNDELIVERABLE)
    assert tlvs == {RECEIPTED_MESSAGE_ID: b"00ff\0", MESSAGE_STATE: b"\x05"}
    assert read_receipt_tlvs(tlvs) == ("00ff", MessageState.UNDELIVERABLE)
    assert read_receipt_tlvs({}) == (None, None)
    assert read_receipt_tlvs({MESSAGE_STATE: b"\x63"}) == (None, None)

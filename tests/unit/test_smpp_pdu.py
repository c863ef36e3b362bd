"""SMPP 3.4 PDUs: known octets, round trips, framing and malformed input."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hexcast.core.errors import HexcastError, SmppError
from hexcast.core.smpp.pdu import (
    MAX_PDU,
    MAX_SEQUENCE,
    MESSAGE_PAYLOAD,
    Bind,
    BindResp,
    Command,
    DeliverSm,
    DeliverSmResp,
    Empty,
    Framer,
    Pdu,
    QuerySm,
    QuerySmResp,
    Sequences,
    Status,
    SubmitSm,
    SubmitSmResp,
    decode,
    encode,
    error_answer,
    header,
)


def _frame(command: int, body: bytes, status: int = 0, sequence: int = 1) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command, status, sequence) + body


def test_enquire_link_octets() -> None:
    pdu = Pdu(Command.ENQUIRE_LINK, 0, 1)
    assert encode(pdu).hex() == "00000010" "00000015" "00000000" "00000001"
    assert decode(bytes.fromhex("00000010000000150000000000000001")) == pdu


def test_bind_transmitter_octets() -> None:
    pdu = Pdu(Command.BIND_TRANSMITTER, 0, 2, Bind("hexcast", "secret"))
    body = b"hexcast\0secret\0\0" + bytes([0x34, 0, 0]) + b"\0"
    assert encode(pdu) == _frame(0x02, body, sequence=2)


def test_submit_sm_octets_with_tlv() -> None:
    sm = SubmitSm(source_addr="Shop", dest_addr_ton=1, dest_addr_npi=1,
                  destination_addr="15551234567", registered_delivery=1, short_message=b"Hi",
                  tlvs={MESSAGE_PAYLOAD: b"xy"})
    raw = encode(Pdu(Command.SUBMIT_SM, 0, 5, sm))
    body = (b"\0" + b"\0\0Shop\0" + b"\x01\x0115551234567\0" + b"\0\0\0" + b"\0\0"
            + b"\x01\0\0\0" + b"\x02Hi" + b"\x04\x24\x00\x02xy")
    assert raw == _frame(0x04, body, sequence=5)


def test_error_response_is_header_only_and_decodes_with_or_without_body() -> None:
    request = Pdu(Command.SUBMIT_SM, 0, 9, SubmitSm(destination_addr="1"))
    throttled = request.reply(status=Status.ESME_RTHROTTLED)
    raw = encode(throttled)
    assert raw == _frame(0x80000004, b"", status=0x58, sequence=9)
    assert decode(raw) == Pdu(Command.SUBMIT_SM_RESP, 0x58, 9, SubmitSmResp(""))
    with_body = _frame(0x80000004, b"\0", status=0x58, sequence=9)
    assert decode(with_body).status == Status.ESME_RTHROTTLED


_text = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0xFF), max_size=15)
_octet = st.integers(0, 255)
_time = st.sampled_from(["", "240101120000000+"])
_tlvs = st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=40), max_size=4)
_short: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict, service_type=st.text(alphabet="ABC", max_size=5), source_addr_ton=_octet,
    source_addr_npi=_octet, source_addr=_text.map(lambda s: s[:20]), dest_addr_ton=_octet,
    dest_addr_npi=_octet, destination_addr=_text.map(lambda s: s[:20]), esm_class=_octet,
    protocol_id=_octet, priority_flag=_octet, schedule_delivery_time=_time, validity_period=_time,
    registered_delivery=_octet, replace_if_present_flag=_octet, data_coding=_octet,
    sm_default_msg_id=_octet, short_message=st.binary(max_size=254), tlvs=_tlvs,
)
_bodies = st.one_of(
    st.tuples(st.sampled_from([Command.BIND_TRANSMITTER, Command.BIND_RECEIVER,
                               Command.BIND_TRANSCEIVER]),
              st.builds(Bind, _text, _text.map(lambda s: s[:8]), _text.map(lambda s: s[:12]),
                        _octet, _octet, _octet, _text)),
    st.tuples(st.just(Command.BIND_TRANSCEIVER_RESP), st.builds(BindResp, _text, _tlvs)),
    st.tuples(st.just(Command.SUBMIT_SM), _short.map(lambda kw: SubmitSm(**kw))),
    st.tuples(st.just(Command.DELIVER_SM), _short.map(lambda kw: DeliverSm(**kw))),
    st.tuples(st.just(Command.SUBMIT_SM_RESP), st.builds(SubmitSmResp, _text)),
    st.tuples(st.just(Command.DELIVER_SM_RESP), st.builds(DeliverSmResp, _text)),
    st.tuples(st.just(Command.QUERY_SM), st.builds(QuerySm, _text, _octet, _octet, _text)),
    st.tuples(st.just(Command.QUERY_SM_RESP), st.builds(QuerySmResp, _text, _time, _octet, _octet)),
    st.tuples(st.sampled_from([Command.ENQUIRE_LINK, Command.ENQUIRE_LINK_RESP, Command.UNBIND,
                               Command.UNBIND_RESP, Command.GENERIC_NACK]), st.just(Empty())),
)


@given(_bodies, st.integers(0, MAX_SEQUENCE))
def test_round_trip(command_body: tuple[Command, object], sequence: int) -> None:
    command, body = command_body
    pdu = Pdu(command, 0, sequence, body)  # type: ignore[arg-type]
    raw = encode(pdu)
    assert header(raw)[0] == len(raw)
    assert decode(raw) == pdu


@given(st.lists(_bodies, min_size=1, max_size=6), st.lists(st.integers(1, 50), min_size=1))
def test_framer_splits_any_chunking(pdus: list[tuple[Command, object]], cuts: list[int]) -> None:
    frames = [encode(Pdu(c, 0, n + 1, b)) for n, (c, b) in enumerate(pdus)]  # type: ignore[arg-type]
    stream = b"".join(frames)
    framer, got, pos, i = Framer(), [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got += framer.feed(stream[pos : pos + step])
        pos, i = pos + step, i + 1
    assert got == frames
    assert framer.buffered == 0


@pytest.mark.parametrize("length", [0, 15, MAX_PDU + 1])
def test_framer_refuses_impossible_lengths(length: int) -> None:
    with pytest.raises(SmppError) as err:
        Framer().feed(struct.pack(">I", length) + b"\0" * 12)
    assert err.value.status == Status.ESME_RINVCMDLEN
    assert isinstance(err.value, HexcastError)


def _submit_body(source: bytes = b"1\0", dest: bytes = b"2\0", sm_len: int = 2,
                 sm: bytes = b"hi") -> bytes:
    return b"\0\0\0" + source + b"\0\0" + dest + b"\0" * 9 + bytes([sm_len]) + sm


@pytest.mark.parametrize(
    ("frame", "status"),
    [
        (_frame(0x00000099, b""), Status.ESME_RINVCMDID),
        (_frame(0x04, _submit_body(source=b"1" * 21 + b"\0")), Status.ESME_RINVSRCADR),
        (_frame(0x04, _submit_body(dest=b"9" * 30 + b"\0")), Status.ESME_RINVDSTADR),
        (_frame(0x04, _submit_body(sm_len=5)), Status.ESME_RINVCMDLEN),  # short_message truncated
        (_frame(0x04, _submit_body(sm_len=255, sm=b"x" * 255)), Status.ESME_RINVMSGLEN),
        (_frame(0x04, b"\0\0\0abc"), Status.ESME_RINVCMDLEN),  # C-string without its NUL
        (_frame(0x04, _submit_body() + b"\x04\x24\x00\x09ab"), Status.ESME_RINVOPTPARSTREAM),
        (_frame(0x02, b"a-far-too-long-system-id\0pw\0\0\x34\0\0\0"), Status.ESME_RINVSYSID),
        (_frame(0x02, b"sys\0a-long-password\0\0\x34\0\0\0"), Status.ESME_RINVPASWD),
        (_frame(0x15, b"\0"), Status.ESME_RINVCMDLEN),  # enquire_link has no body
        (_frame(0x04, _submit_body())[:-3], Status.ESME_RINVCMDLEN),
    ],
)
def test_malformed_pdus(frame: bytes, status: Status) -> None:
    with pytest.raises(SmppError) as err:
        decode(frame)
    assert err.value.status == status


def test_command_length_must_match_the_frame() -> None:
    frame = _frame(0x15, b"")
    with pytest.raises(SmppError) as err:
        decode(frame + b"\0")
    assert err.value.status == Status.ESME_RINVCMDLEN


def test_encode_refuses_what_the_spec_does_not_allow() -> None:
    with pytest.raises(SmppError) as err:
        encode(Pdu(Command.SUBMIT_SM, 0, 1, SubmitSm(destination_addr="1" * 21)))
    assert err.value.status == Status.ESME_RINVDSTADR
    with pytest.raises(SmppError) as err:
        encode(Pdu(Command.SUBMIT_SM, 0, 1, SubmitSm(short_message=b"x" * 255)))
    assert err.value.status == Status.ESME_RINVMSGLEN
    with pytest.raises(SmppError):
        encode(Pdu(Command.SUBMIT_SM, 0, 1, SubmitSmResp("x")))  # the wrong body
    with pytest.raises(SmppError):
        encode(Pdu(Command.ENQUIRE_LINK, 0, MAX_SEQUENCE + 1))


def test_reply_and_nack() -> None:
    bind = Pdu(Command.BIND_TRANSCEIVER, 0, 3, Bind("a", "b"))
    assert bind.reply(BindResp("smsc")) == Pdu(Command.BIND_TRANSCEIVER_RESP, 0, 3,
                                                  BindResp("smsc"))
    assert bind.reply(status=Status.ESME_RINVPASWD).body == BindResp("")
    assert Pdu(Command.ENQUIRE_LINK, 0, 4).reply().command == Command.ENQUIRE_LINK_RESP
    assert bind.nack(Status.ESME_RINVCMDLEN) == Pdu(Command.GENERIC_NACK, 2, 3, Empty())


def test_sequences_wrap_to_one() -> None:
    seq = Sequences(MAX_SEQUENCE - 1)
    assert [seq.next() for _ in range(3)] == [MAX_SEQUENCE - 1, MAX_SEQUENCE, 1]
    assert Sequences(0).next() == 1


def test_error_answer() -> None:
    bad_submit = _frame(0x04, _submit_body(dest=b"9" * 30 + b"\0"), sequence=12)
    with pytest.raises(SmppError) as err:
        decode(bad_submit)
    answer = error_answer(bad_submit, err.value)
    assert answer == Pdu(Command.SUBMIT_SM_RESP, Status.ESME_RINVDSTADR, 12, SubmitSmResp(""))
    assert encode(answer) == _frame(0x80000004, b"", status=0x0B, sequence=12)
    unknown = _frame(0x99, b"", sequence=13)
    with pytest.raises(SmppError) as err:
        decode(unknown)
    assert error_answer(unknown, err.value) == Pdu(Command.GENERIC_NACK, 3, 13)
    bad_resp = _frame(0x80000005, b"x", sequence=14)  # deliver_sm_resp without its NUL
    with pytest.raises(SmppError) as err:
        decode(bad_resp)
    assert error_answer(bad_resp, err.value).command == Command.GENERIC_NACK

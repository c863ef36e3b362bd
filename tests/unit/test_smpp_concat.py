"""GSM-7 tables and long messages: split, part counts beside sender.text, reassembly."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexcast.core.smpp.concat import (
    DC_GSM7,
    DC_UCS2,
    ESM_UDHI,
    Part,
    Segment,
    decode_text,
    reassemble,
    segment_of,
    split,
)
from hexcast.core.smpp.gsm import GSM_BASIC, GSM_EXTENDED, decode_gsm7, encode_gsm7
from hexcast.core.smpp.pdu import (
    MESSAGE_PAYLOAD,
    SAR_MSG_REF_NUM,
    SAR_SEGMENT_SEQNUM,
    SAR_TOTAL_SEGMENTS,
    SubmitSm,
)
from sender.text import segment_info

_GSM_TEXT = st.text(alphabet=sorted(GSM_BASIC | GSM_EXTENDED), min_size=1, max_size=900)
_EMOJI_TEXT = st.text(alphabet=st.sampled_from(list("aé€ж中😀🎉👍🏽")), min_size=1, max_size=400)
_MODES = st.sampled_from(["udh", "sar"])


def _long(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Texts of 1 to 1,000 characters, lengths spread evenly (``st.text`` alone keeps to a few
    dozen characters, which never split)."""
    return st.integers(1, 1000).flatmap(
        lambda n: st.text(alphabet=alphabet, min_size=n, max_size=n))


_EXTENSION_HEAVY = st.sampled_from([*"abc 12", *sorted(GSM_EXTENDED)])  # escape pairs at every cut
_LONG_TEXTS = st.one_of(
    _long(st.sampled_from(sorted(GSM_BASIC | GSM_EXTENDED))),
    _long(_EXTENSION_HEAVY),
    _long(st.sampled_from(list("aé€ж中😀🎉👍🏽"))),  # UCS-2 with surrogate pairs
    _long(st.sampled_from([*"abcdef {}[]", "😀"])),  # mostly GSM-7, UCS-2 for one emoji
)
_PAYLOAD_MAX = {(DC_GSM7, False): 160, (DC_GSM7, True): 153,  # unpacked: one septet an octet
                (DC_UCS2, False): 140, (DC_UCS2, True): 134}  # two octets a UTF-16 unit


def test_gsm7_known_octets() -> None:
    assert encode_gsm7("@A€{") == bytes([0x00, 0x41, 0x1B, 0x65, 0x1B, 0x28])
    assert decode_gsm7(bytes([0x00, 0x41, 0x1B, 0x65, 0x1B, 0x28])) == "@A€{"
    assert decode_gsm7(bytes([0x1B, 0x41])) == "A"  # unknown extension: the basic character
    assert decode_gsm7(bytes([0x41, 0x1B])) == "A"  # a trailing lone escape is dropped
    with pytest.raises(ValueError, match="not in GSM-7"):
        encode_gsm7("ж")
    with pytest.raises(ValueError, match="septet"):
        decode_gsm7(b"\x80")


@given(_GSM_TEXT)
def test_gsm7_round_trip(text: str) -> None:
    assert decode_gsm7(encode_gsm7(text)) == text


@given(st.text(max_size=50), st.binary(max_size=50))
def test_gsm7_any_input(text: str, data: bytes) -> None:
    """Any text encodes exactly when every character is GSM-7; any octets decode exactly when
    all are septets."""
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        assert decode_gsm7(encode_gsm7(text)) == text
    else:
        with pytest.raises(ValueError, match="not in GSM-7"):
            encode_gsm7(text)
    if max(data, default=0) < 0x80:
        decoded = decode_gsm7(data)
        assert all(c in GSM_BASIC or c in GSM_EXTENDED for c in decoded)
        if 0x1B not in data:
            assert encode_gsm7(decoded) == data
    else:
        with pytest.raises(ValueError, match="septet"):
            decode_gsm7(data)


@settings(max_examples=300, deadline=None)
@given(_LONG_TEXTS, _MODES, st.integers(0, 0xFFFF))
def test_split_agrees_with_sender_and_reassembles(text: str, mode: str, ref: int) -> None:
    """Up to 1,000 characters: as many parts as ``sender.text`` counts, each within its
    coding's limit (GSM-7 goes unpacked, one septet an octet: 160 alone, 153 beside a UDH;
    UCS-2 140 / 134 octets) and whole text on its own (no escape or surrogate pair split)."""
    parts = split(text, mode=mode, reference=ref)  # type: ignore[arg-type]
    info = segment_info(text)
    assert len(parts) == info.segments
    assert {p.data_coding for p in parts} == {DC_GSM7 if info.encoding == "GSM-7" else DC_UCS2}
    many = len(parts) > 1
    pieces = []
    for part in parts:
        payload = part.short_message[6:] if mode == "udh" and many else part.short_message
        assert len(payload) <= _PAYLOAD_MAX[part.data_coding, many]
        assert len(part.short_message) <= 254  # short_message's limit, UDH included
        pieces.append(decode_text(part.data_coding, payload))
    assert "".join(pieces) == text
    shuffled = list(parts)
    random.Random(ref).shuffle(shuffled)
    assert reassemble(shuffled) == text


def test_udh_layout() -> None:
    text = "a" * 152 + "€" + "b" * 10  # the escape pair would straddle septet 153: moved whole
    parts = split(text, mode="udh", reference=0x1FF)
    assert [p.short_message[:6] for p in parts] == [bytes([5, 0, 3, 0xFF, 2, 1]),
                                                   bytes([5, 0, 3, 0xFF, 2, 2])]
    assert all(p.esm_class_bits == ESM_UDHI for p in parts)
    assert parts[0].short_message[6:] == b"a" * 152
    assert parts[1].short_message[6:] == b"\x1b\x65" + b"b" * 10
    assert segment_of(parts[1]) == Segment(0xFF, 2, 2)


def test_sar_layout() -> None:
    parts = split("😀" * 34 + "x" * 10, mode="sar", reference=0x1234)  # 78 units: two parts
    assert len(parts) == 2
    assert parts[0].short_message == ("😀" * 33).encode("utf-16-be")  # 66 units, pair kept whole
    assert parts[1].tlvs == {SAR_MSG_REF_NUM: b"\x12\x34", SAR_TOTAL_SEGMENTS: b"\x02",
                             SAR_SEGMENT_SEQNUM: b"\x02"}
    assert all(p.esm_class_bits == 0 for p in parts)


def test_single_and_payload() -> None:
    assert split("hi", mode="udh", reference=1) == [Part(DC_GSM7, b"hi")]
    long_text = "ж" * 300
    payload = split(long_text, mode="payload", reference=1)
    assert payload == [Part(DC_UCS2, b"", 0, {MESSAGE_PAYLOAD: long_text.encode("utf-16-be")})]
    assert reassemble(payload) == long_text
    with pytest.raises(ValueError, match="at most 255"):
        split("x" * 153 * 256, mode="udh", reference=1)


def test_reassemble_joins_octets_split_mid_character() -> None:
    """Another client (smpplib's make_parts) cuts UCS-2 every 134 octets, even inside a
    surrogate pair; the octets are joined before decoding."""
    data = ("a" + "😀" * 40).encode("utf-16-be")
    chunks = [data[i : i + 134] for i in range(0, len(data), 134)]
    parts = [Part(DC_UCS2, bytes([5, 0, 3, 7, len(chunks), n]) + c, ESM_UDHI)
             for n, c in enumerate(chunks, start=1)]
    assert reassemble(reversed(parts)) == "a" + "😀" * 40


def test_reassemble_refuses_a_missing_part_and_reads_16_bit_udh() -> None:
    parts = split("x" * 400, mode="udh", reference=9)
    with pytest.raises(ValueError, match="parts"):
        reassemble(parts[:2])
    sixteen = Part(DC_GSM7, bytes([6, 8, 4, 0x01, 0x02, 1, 1]) + b"ok", ESM_UDHI)
    assert segment_of(sixteen) == Segment(0x0102, 1, 1)
    assert reassemble([sixteen]) == "ok"


def test_part_of_a_received_pdu() -> None:
    sm = SubmitSm(esm_class=0x43, data_coding=8, short_message=b"\0a", tlvs={1: b"x"})
    assert Part.of(sm) == Part(8, b"\0a", ESM_UDHI, {1: b"x"})
    with pytest.raises(ValueError, match="data_coding"):
        decode_text(0x04, b"x")

"""Long messages: splitting a text into SMPP parts (UDH, SAR TLVs or one message_payload) and
putting received parts back together. Pure.

The encoding and the part count follow ``sender.text.segment_info``: GSM-7 when every
character is in the GSM 03.38 tables, else UCS-2 (with ``coding="ucs2"``, UCS-2 always); one
part up to 160 septets / 70 UTF-16 units, else parts of 153 septets / 67 units (the 6-octet UDH
takes the rest). An escape pair or a surrogate pair is never split across parts.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hexcast.core.smpp.gsm import decode_gsm7, encode_gsm7, gsm7_units, is_gsm7
from hexcast.core.smpp.pdu import (
    MESSAGE_PAYLOAD,
    SAR_MSG_REF_NUM,
    SAR_SEGMENT_SEQNUM,
    SAR_TOTAL_SEGMENTS,
    ShortMessage,
)

__all__ = [
    "DC_GSM7", "DC_UCS2", "ESM_UDHI", "MAX_PARTS", "Coding", "Mode", "Part", "Segment",
    "decode_text", "encode_text", "reassemble", "segment_of", "split",
]

Mode = Literal["udh", "sar", "payload"]
Coding = Literal["auto", "ucs2"]  # auto: GSM-7 when the text fits it, else UCS-2
DC_GSM7 = 0x00
DC_UCS2 = 0x08
ESM_UDHI = 0x40
MAX_PARTS = 255
_SINGLE = {DC_GSM7: 160, DC_UCS2: 70}
_MULTI = {DC_GSM7: 153, DC_UCS2: 67}


@dataclass(frozen=True, slots=True)
class Part:
    """One submit_sm's worth: OR ``esm_class_bits`` into the PDU's esm_class."""

    data_coding: int
    short_message: bytes
    esm_class_bits: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, sm: ShortMessage) -> Part:
        """The part a received submit_sm / deliver_sm carries."""
        return cls(sm.data_coding, sm.short_message, sm.esm_class & ESM_UDHI, sm.tlvs)


@dataclass(frozen=True, slots=True)
class Segment:
    """Where a part belongs: concatenation reference, total parts, its 1-based number."""

    reference: int
    total: int
    number: int


def encode_text(text: str, coding: Coding = "auto") -> tuple[int, bytes]:
    """``(data_coding, octets)``: GSM-7 unpacked when it fits (and ``coding`` is ``auto``),
    else UCS-2 (UTF-16-BE)."""
    if coding == "auto" and is_gsm7(text):
        return DC_GSM7, encode_gsm7(text)
    return DC_UCS2, text.encode("utf-16-be")


def decode_text(data_coding: int, data: bytes) -> str:
    """Octets of ``data_coding`` 0 (GSM-7), 8 (UCS-2), 1 (IA5/ASCII) or 3 (Latin-1) → text;
    ValueError for another coding or octets that are not valid in it."""
    if data_coding == DC_GSM7:
        return decode_gsm7(data)
    if data_coding == DC_UCS2:
        return data.decode("utf-16-be")
    if data_coding == 0x01:
        return data.decode("ascii")
    if data_coding == 0x03:
        return data.decode("latin-1")
    raise ValueError(f"data_coding 0x{data_coding:02X} is not text hexcast reads")


def _chunks(text: str, coding: int) -> list[str]:
    """The text in pieces of at most ``_MULTI[coding]`` units, a character never split."""
    limit = _MULTI[coding]
    chunks: list[str] = []
    start = used = 0
    for i, char in enumerate(text):
        size = gsm7_units(char) if coding == DC_GSM7 else (2 if ord(char) > 0xFFFF else 1)
        if used + size > limit:
            chunks.append(text[start:i])
            start, used = i, 0
        used += size
    chunks.append(text[start:])
    return chunks


def _units(text: str, coding: int) -> int:
    if coding == DC_GSM7:
        return sum(gsm7_units(c) for c in text)
    return len(text.encode("utf-16-be")) // 2


def split(text: str, *, mode: Mode, reference: int, coding: Coding = "auto") -> list[Part]:
    """The parts to submit for ``text`` (in ``coding``). ``reference`` identifies this
    message's parts: its low 8 bits go in the UDH, its low 16 bits in ``sar_msg_ref_num``.
    ``payload`` mode sends one part whatever the length (the text in ``message_payload``,
    ``short_message`` empty). ValueError past 255 parts."""
    data_coding, octets = encode_text(text, coding)
    if mode == "payload":
        return [Part(data_coding, b"", 0, {MESSAGE_PAYLOAD: octets})]
    if _units(text, data_coding) <= _SINGLE[data_coding]:
        return [Part(data_coding, octets)]
    chunks = _chunks(text, data_coding)
    total = len(chunks)
    if total > MAX_PARTS:
        raise ValueError(f"{total} parts: at most {MAX_PARTS}")
    parts: list[Part] = []
    for number, chunk in enumerate(chunks, start=1):
        data = encode_gsm7(chunk) if data_coding == DC_GSM7 else chunk.encode("utf-16-be")
        if mode == "udh":
            udh = bytes([0x05, 0x00, 0x03, reference & 0xFF, total, number])
            parts.append(Part(data_coding, udh + data, ESM_UDHI))
        else:
            tlvs = {SAR_MSG_REF_NUM: struct.pack(">H", reference & 0xFFFF),
                    SAR_TOTAL_SEGMENTS: bytes([total]), SAR_SEGMENT_SEQNUM: bytes([number])}
            parts.append(Part(data_coding, data, 0, tlvs))
    return parts


def _udh_segment(data: bytes) -> tuple[Segment | None, int]:
    """The concatenation element of a UDH (8-bit IEI 0x00 or 16-bit 0x08) and the UDH's
    length; ValueError when the header runs past the data."""
    if not data or data[0] + 1 > len(data):
        raise ValueError("user data header runs past the message")
    end, pos, found = data[0] + 1, 1, None
    while pos + 2 <= end:
        iei, size = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + size]
        if pos + 2 + size > end:
            raise ValueError("user data header element runs past the header")
        if iei == 0x00 and size == 3:
            found = Segment(value[0], value[1], value[2])
        elif iei == 0x08 and size == 4:
            found = Segment(int.from_bytes(value[:2], "big"), value[2], value[3])
        pos += 2 + size
    return found, end


def segment_of(part: Part) -> Segment | None:
    """Where ``part`` belongs in a long message; None for a message that is whole."""
    if part.esm_class_bits & ESM_UDHI:
        return _udh_segment(part.short_message)[0]
    ref, total, number = (part.tlvs.get(t) for t in
                          (SAR_MSG_REF_NUM, SAR_TOTAL_SEGMENTS, SAR_SEGMENT_SEQNUM))
    if ref is None or total is None or number is None:
        return None
    return Segment(int.from_bytes(ref, "big"), total[0], number[0])


def _payload(part: Part) -> bytes:
    if MESSAGE_PAYLOAD in part.tlvs:
        return part.tlvs[MESSAGE_PAYLOAD]
    if part.esm_class_bits & ESM_UDHI:
        return part.short_message[_udh_segment(part.short_message)[1]:]
    return part.short_message


def reassemble(parts: Iterable[Part]) -> str:
    """The text of a whole message from its parts, in any order (UDH, SAR or payload).
    The parts' octets are joined before decoding, so a character another sender split across
    parts still reads whole. ValueError for a missing or repeated part."""
    found: Sequence[Part] = list(parts)
    if not found:
        raise ValueError("no parts")
    numbered = [(segment_of(p), p) for p in found]
    if len(numbered) > 1 or numbered[0][0] is not None:
        total = numbered[0][0].total if numbered[0][0] else 0
        numbers = sorted(s.number for s, _ in numbered if s is not None)
        if numbers != list(range(1, total + 1)):
            raise ValueError(f"parts {numbers} of {total}")
        numbered.sort(key=lambda sp: sp[0].number if sp[0] else 0)
    data = b"".join(_payload(p) for _, p in numbered)
    return decode_text(numbered[0][1].data_coding, data)

"""Reading and writing SMPP 3.4 field types: integers, C-octet strings, octet strings and
TLVs. Every malformed input is an :class:`~hexcast.core.errors.SmppError` carrying the status
an SMSC or ESME answers it with."""

from __future__ import annotations

import struct

from hexcast.core.errors import SmppError

__all__ = ["Reader", "Writer"]

_INVALID_COMMAND_LENGTH = 0x02
_INVALID_TLV_STREAM = 0xC0
_TLV_HEAD = struct.Struct(">HH")


class Reader:
    """A cursor over one PDU body."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, name: str, status: int = _INVALID_COMMAND_LENGTH) -> bytes:
        if n > self.remaining:
            raise SmppError(f"{name}: PDU ends early ({self.remaining} of {n} octets)", status=status)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, name: str) -> int:
        return self.take(1, name)[0]

    def cstr(self, name: str, max_len: int, status: int) -> str:
        """A C-octet string of at most ``max_len`` octets including its NUL."""
        end = self.data.find(b"\0", self.pos, self.pos + max_len)
        if end < 0:
            if self.remaining < max_len:
                raise SmppError(f"{name}: no NUL before the end of the PDU",
                                status=_INVALID_COMMAND_LENGTH)
            raise SmppError(f"{name}: longer than {max_len - 1} characters", status=status)
        raw = self.data[self.pos : end]
        self.pos = end + 1
        return raw.decode("latin-1")

    def tlvs(self) -> dict[int, bytes]:
        """The optional parameters up to the end of the body (a repeated tag: the last wins)."""
        out: dict[int, bytes] = {}
        while self.remaining:
            head = self.take(_TLV_HEAD.size, "TLV header", _INVALID_TLV_STREAM)
            tag, length = _TLV_HEAD.unpack(head)
            out[tag] = self.take(length, f"TLV 0x{tag:04X}", _INVALID_TLV_STREAM)
        return out

    def end(self, name: str) -> None:
        if self.remaining:
            raise SmppError(f"{name}: {self.remaining} octets after the last field",
                            status=_INVALID_COMMAND_LENGTH)


class Writer:
    """Builds one PDU body."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray()

    def u8(self, value: int, name: str) -> None:
        if not 0 <= value <= 0xFF:
            raise SmppError(f"{name}: {value} is not one octet", status=0x08)
        self.out.append(value)

    def cstr(self, value: str, name: str, max_len: int, status: int) -> None:
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raise SmppError(f"{name}: only Latin-1 characters fit", status=status) from None
        if len(raw) >= max_len or b"\0" in raw:
            raise SmppError(f"{name}: longer than {max_len - 1} characters or holds NUL",
                            status=status)
        self.out += raw
        self.out.append(0)

    def octets(self, value: bytes) -> None:
        self.out += value

    def tlvs(self, tlvs: dict[int, bytes]) -> None:
        for tag, value in tlvs.items():
            if not 0 <= tag <= 0xFFFF or len(value) > 0xFFFF:
                raise SmppError(f"TLV 0x{tag:X}: bad tag or too long", status=0xC2)
            self.out += _TLV_HEAD.pack(tag, len(value))
            self.out += value

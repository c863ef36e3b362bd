"""GSM 03.38 default alphabet and its extension table, unpacked (one septet per octet), as
SMPP ``data_coding`` 0 carries it. UCS-2 (``data_coding`` 8) is UTF-16-BE: a character past
U+FFFF is a surrogate pair, two units.

``GSM_BASIC``/``GSM_EXTENDED`` are the character sets ``sender/text.py`` counts segments by.
"""

from __future__ import annotations

__all__ = [
    "ESCAPE", "GSM_BASIC", "GSM_EXTENDED", "decode_gsm7", "encode_gsm7", "gsm7_units", "is_gsm7",
]

ESCAPE = 0x1B
# Position = septet value; 0x1B is the escape to the extension table.
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENSION = {
    "\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E,
    "|": 0x40, "€": 0x65,
}
_ENCODE: dict[str, bytes] = {c: bytes([i]) for i, c in enumerate(_BASIC_TABLE) if i != ESCAPE}
_ENCODE.update({c: bytes([ESCAPE, code]) for c, code in _EXTENSION.items()})
_DECODE_BASIC = {i: c for i, c in enumerate(_BASIC_TABLE) if i != ESCAPE}
_DECODE_EXTENSION = {code: c for c, code in _EXTENSION.items()}

GSM_BASIC = frozenset(_DECODE_BASIC.values())
GSM_EXTENDED = frozenset(_EXTENSION)
# str.translate tables for the fast paths; a character outside GSM-7 becomes U+FFFF, which
# Latin-1 cannot encode, so the slow path then names it.
_ENCODE_FAST = {i: "\uffff" for i in range(0x100)}
_ENCODE_FAST.update({ord(c): v.decode("latin-1") for c, v in _ENCODE.items()})
_DECODE_FAST = {i: _DECODE_BASIC.get(i, "\uffff") for i in range(0x100)}


def is_gsm7(text: str) -> bool:
    """Every character is in the default alphabet or its extension table."""
    return all(c in _ENCODE for c in text)


def gsm7_units(char: str) -> int:
    """Septets one character costs: 2 for an extension character, else 1."""
    return 2 if char in GSM_EXTENDED else 1


def encode_gsm7(text: str) -> bytes:
    """Unpacked septets; an extension character is ``0x1B`` + its code. ValueError for a
    character outside both tables."""
    try:
        return text.translate(_ENCODE_FAST).encode("latin-1")
    except UnicodeEncodeError:
        pass
    try:
        return b"".join([_ENCODE[c] for c in text])
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} (U+{ord(exc.args[0]):04X}) is not in GSM-7") from None


def decode_gsm7(data: bytes) -> str:
    """Unpacked septets → text. An escape followed by a code the extension table lacks reads as
    that code's basic character (as 03.38 asks); a trailing lone escape is dropped. ValueError
    for an octet above 0x7F (not a septet)."""
    if ESCAPE not in data:
        text = data.decode("latin-1").translate(_DECODE_FAST)
        if "\uffff" not in text:
            return text
    out: list[str] = []
    escaped = False
    for octet in data:
        if octet > 0x7F:
            raise ValueError(f"0x{octet:02X} is not a GSM-7 septet")
        if escaped:
            escaped = False
            out.append(_DECODE_EXTENSION.get(octet) or _DECODE_BASIC.get(octet, " "))
        elif octet == ESCAPE:
            escaped = True
        else:
            out.append(_DECODE_BASIC[octet])
    return "".join(out)

"""SMS text: templates with named placeholders, and GSM-7 / UCS-2 segment counting. Pure."""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from hexcast.core.errors import InvalidInput
from hexcast.core.smpp.gsm import GSM_BASIC, GSM_EXTENDED

__all__ = [
    "SegmentInfo", "placeholders", "render", "segment_count", "segment_info", "validate_template",
]

_GSM_BASIC = GSM_BASIC  # GSM 03.38's tables live with the SMPP codec that encodes them
_GSM_EXTENDED = GSM_EXTENDED  # each costs two septets (escape + char)
_FORMATTER = string.Formatter()
_ASCII_NON_GSM = frozenset(chr(i) for i in range(128)) - _GSM_BASIC - _GSM_EXTENDED
_ASCII_EXTENDED = "^{}\\[~]|\x0c"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def _units(text: str) -> tuple[Literal["GSM-7", "UCS-2"], list[int]]:
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        return "GSM-7", [2 if c in _GSM_EXTENDED else 1 for c in text]
    return "UCS-2", [2 if ord(c) > 0xFFFF else 1 for c in text]


def segment_info(text: str) -> SegmentInfo:
    """Encoding, size and segment count; a character is never split across segments."""
    encoding, sizes = _units(text)
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    total = sum(sizes)
    if total <= single:
        return SegmentInfo(encoding, total, 1 if total else 0)
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return SegmentInfo(encoding, total, segments)


def segment_count(text: str) -> int:
    """``segment_info(text).segments``, with a fast path for plain ASCII (the common case)."""
    if text.isascii() and _ASCII_NON_GSM.isdisjoint(text):
        extended = sum(text.count(c) for c in _ASCII_EXTENDED)
        units = len(text) + extended
        if units <= 160:
            return 1 if units else 0
        if not extended:
            return -(-units // 153)
    return segment_info(text).segments


def placeholders(template: str) -> list[str]:
    """Names used as ``{name}`` in ``template``; InvalidInput on anything else."""
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise InvalidInput(f"template is malformed: {exc}", field="body") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise InvalidInput(
                f"placeholder {{{name}}} must be a plain field name like {{first_name}}", field="body"
            )
        names.append(name)
    return names


def validate_template(template: str, allowed: Collection[str]) -> list[str]:
    """The template's placeholders, or InvalidInput naming the first unknown one."""
    names = placeholders(template)
    for name in names:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise InvalidInput(f"unknown placeholder {{{name}}} (known: {known})", field="body")
    return names


def render(template: str, fields: Mapping[str, object]) -> str:
    """Fill placeholders; missing values render as empty text."""
    out: list[str] = []
    for literal, name, _, _ in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            value = fields.get(name)
            out.append("" if value is None else str(value))
    return "".join(out)

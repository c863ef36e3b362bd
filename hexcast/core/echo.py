"""What an error answer may repeat of the input: a few hundred characters, never the body.

A validation error used to echo the offending value whole, so a 200 MB string came back as a
200 MB answer. Every piece of input an answer echoes goes through :func:`clip_echo` (a value)
or :func:`clip_text` (a message), which cut it with a marker saying how much was left out.
"""

from __future__ import annotations

import json

__all__ = ["ECHO_LIMIT", "MESSAGE_LIMIT", "clip_echo", "clip_text"]

ECHO_LIMIT = 200
"""Characters of one echoed input value (or one error's message) an answer carries."""
MESSAGE_LIMIT = 500
"""Characters of a whole error message, which may quote input among its own words."""


def clip_text(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters with a marker, and made encodable as UTF-8 (a lone
    surrogate from ``"\\ud800"`` in JSON is written as its escape, not answered as a 500)."""
    if len(text) > limit:
        text = f"{text[:limit]}…[{len(text) - limit} more characters cut]"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def clip_echo(value: object, limit: int = ECHO_LIMIT) -> object:
    """``value`` itself if its JSON text is short, else that text cut by :func:`clip_text`;
    text and bytes are cut as text."""
    if isinstance(value, str):
        return clip_text(value, limit)
    if isinstance(value, bytes | bytearray):
        return clip_text(bytes(value).decode("utf-8", "replace"), limit)
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return value if len(text) <= limit and _encodable(text) else clip_text(text, limit)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

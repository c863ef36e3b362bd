"""Reading JSON from outside: standard JSON only, and one error for every way it is not."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from hexcast.core.errors import InvalidInput

__all__ = ["MalformedJSON", "loads"]

_CONSTANT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?Infinity|NaN)', re.S)
"""A JSON string (skipped) or a constant outside strings (group 1)."""


class MalformedJSON(InvalidInput):
    """Not standard JSON. ``str()`` says why with the position; ``reason`` says why alone."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, field="body")
        self.reason = reason


class _Constant(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _no_constant(name: str) -> float:
    """``NaN``, ``Infinity`` and ``-Infinity``: Python's json reads them, JSON has none."""
    raise _Constant(name)


def _constant_error(raw: str | bytes, name: str) -> json.JSONDecodeError:
    """The error for the constant ``name`` at its place in ``raw``: the parser raised on the
    first one outside a string (it reads in order), and the callback is not told where."""
    text = raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw), "surrogatepass")
    pos = next((m.start(1) for m in _CONSTANT.finditer(text) if m.group(1)), 0)
    return json.JSONDecodeError(f"{name} is not valid JSON", text, pos)


def loads(raw: str | bytes) -> Any:
    """``raw`` parsed; MalformedJSON if it is cut off, not UTF-8, uses NaN or Infinity, has an
    integer longer than Python converts, or is nested deeper than the parser's recursion allows."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except _Constant as exc:
        error = _constant_error(raw, exc.name)
        raise MalformedJSON(str(error), reason=error.msg) from None
    except json.JSONDecodeError as exc:
        raise MalformedJSON(str(exc), reason=exc.msg) from None
    except UnicodeDecodeError as exc:
        raise MalformedJSON(str(exc), reason=exc.reason) from None
    except ValueError:  # only an integer beyond sys.get_int_max_str_digits() is left
        reason = f"a number has more than {sys.get_int_max_str_digits()} digits"
        raise MalformedJSON(reason, reason=reason) from None
    except RecursionError:
        raise MalformedJSON("nested too deeply", reason="nested too deeply") from None

"""Reading JSON from outside: standard JSON only, and one error for every way it is not."""

from __future__ import annotations

import json
from typing import Any

from hexcast.errors import InvalidInput

__all__ = ["MalformedJSON", "loads"]


class MalformedJSON(InvalidInput):
    """Not standard JSON. ``str()`` says why with the position; ``reason`` says why alone."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, field="body")
        self.reason = reason


def _no_constant(name: str) -> float:
    """``NaN``, ``Infinity`` and ``-Infinity``: Python's json reads them, JSON has none."""
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def loads(raw: str | bytes) -> Any:
    """``raw`` parsed; MalformedJSON if it is cut off, not UTF-8, uses NaN or Infinity, or is
    nested deeper than the parser's recursion allows."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise MalformedJSON(str(exc), reason=exc.msg) from None
    except UnicodeDecodeError as exc:
        raise MalformedJSON(str(exc), reason=exc.reason) from None
    except RecursionError:
        raise MalformedJSON("nested too deeply", reason="nested too deeply") from None

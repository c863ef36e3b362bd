"""Text PostgreSQL can store: the one rule for every request field, import cell and record.

PostgreSQL ``text`` (UTF-8) cannot hold ``U+0000``, and a lone surrogate (``\\ud800``, which
Python's JSON reader accepts from ``"\\ud800"``) cannot be encoded in UTF-8 at all. Either
reached asyncpg as a driver error and answered 500, or failed a whole multi-row statement.
Every model that takes text from outside uses :data:`PgText` (or :func:`check_pg_text` for
plain strings such as path ids and CSV cells), so such text is refused where it enters, with
the field and position named.

With limits, :data:`PG_TEXT` is written *after* them: ``Annotated[str, Field(max_length=80),
PG_TEXT]`` (``str | None`` as well), so the limits sit on the string and it wraps both (it
still looks at the text first). Limits put on :data:`PgText` itself (``Annotated[PgText,
Field(...)]``) would land on a validator instead: pydantic then checks them with a generic
wrapper ("Value should have at most 80 items after validation"), one more step per field;
``tests/unit/test_model_constraints.py`` finds any such field in a request.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import ValidatorFunctionWrapHandler, WrapValidator

__all__ = ["PG_TEXT", "PgText", "check_pg_text", "pg_text_problem", "storable"]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def pg_text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored in a PostgreSQL ``text`` column, or None if it can."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    char = found.group()
    what = "NUL (\\u0000)" if char == "\x00" else f"a lone surrogate (\\u{ord(char):04x})"
    return f"contains {what} at position {found.start()}, which cannot be stored"


def storable(value: str) -> str:
    """``value`` with every code point PostgreSQL ``text`` cannot store replaced by U+FFFD: for
    third-party text we keep rather than refuse (a provider's message id or error)."""
    return _UNSTORABLE.sub("\ufffd", value)


def check_pg_text(value: str) -> str:
    """``value`` itself; ValueError (pydantic turns it into a 422 naming the field) if it
    holds a code point PostgreSQL ``text`` cannot store."""
    problem = pg_text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _storable_first(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """The check before the string's own validation: a lone surrogate is named with its
    position here, where the string's limits would only say it is not valid text."""
    if isinstance(value, str):
        check_pg_text(value)
    return handler(value)


PG_TEXT = WrapValidator(_storable_first)
"""The check as ``Annotated`` metadata, placed after a field's limits (see the module's doc)."""

PgText = Annotated[str, PG_TEXT]
"""A ``str`` that PostgreSQL ``text`` can store; use it for every text field from outside."""

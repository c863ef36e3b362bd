"""Text PostgreSQL can store: the one rule for every request field, import cell and record.

PostgreSQL ``text`` (UTF-8) cannot hold ``U+0000``, and a lone surrogate (``\\ud800``, which
Python's JSON reader accepts from ``"\\ud800"``) cannot be encoded in UTF-8 at all. Either
reached asyncpg as a driver error and answered 500, or failed a whole multi-row statement.
Every model that takes text from outside uses :data:`PgText` (or :func:`check_pg_text` for
plain strings such as path ids and CSV cells), so such text is refused where it enters, with
the field and position named.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["PgText", "check_pg_text", "pg_text_problem", "storable"]

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


PgText = Annotated[str, AfterValidator(check_pg_text)]
"""A ``str`` that PostgreSQL ``text`` can store; use it for every text field from outside."""

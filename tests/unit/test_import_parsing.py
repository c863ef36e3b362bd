"""Recipient import files: what the JSON reader makes of bad input (pure, no I/O)."""

from __future__ import annotations

import io

import pytest

from hexcast.core.errors import InvalidInput
from targeting.imports import parse_json

_DEEP = "[" * 100_000 + "]" * 100_000


def test_ndjson_rows_are_read_and_bad_lines_named() -> None:
    text = '{"user_id": "a", "phone": "+13125550100"}\n\n[1]\n{"user_id": \n' + _DEEP + "\n"
    rows = list(parse_json(io.StringIO(text)))
    assert rows[0] == (1, {"user_id": "a", "phone": "+13125550100"})
    assert rows[1] == (3, "not a JSON object")
    assert rows[2][0] == 4
    assert str(rows[2][1]).startswith("invalid JSON")
    assert rows[3] == (5, "invalid JSON: nested too deeply")


def test_an_array_body_too_deep_is_invalid_input_not_a_crash() -> None:
    with pytest.raises(InvalidInput, match="nested too deeply"):
        list(parse_json(io.StringIO("  [" + _DEEP + "]")))


def test_an_array_body_yields_its_objects_by_position() -> None:
    rows = list(parse_json(io.StringIO('[{"user_id": "a"}, 7]')))
    assert rows == [(1, {"user_id": "a"}), (2, "not a JSON object")]

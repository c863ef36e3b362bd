"""The text rule: what PostgreSQL ``text`` cannot store is named, refused, or replaced."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from hexcast.core.pgtext import PgText, pg_text_problem, storable


class _Model(BaseModel):
    name: PgText


@pytest.mark.parametrize(("text", "problem"), [
    ("a\x00b", "contains NUL (\\u0000) at position 1"),
    ("ok\ud800", "contains a lone surrogate (\\ud800) at position 2"),
    ("\udfff", "contains a lone surrogate (\\udfff) at position 0"),
])
def test_unstorable_text_is_named_with_its_position(text: str, problem: str) -> None:
    assert (pg_text_problem(text) or "").startswith(problem)
    with pytest.raises(ValidationError, match="position"):
        _Model(name=text)


def test_any_other_text_passes_unchanged() -> None:
    assert _Model(name="Café 😀 \ufffe \u200b").name == "Café 😀 \ufffe \u200b"


@given(st.text(alphabet=st.one_of(st.characters(), st.characters(categories=["Cs"]), st.just("\x00"))))
def test_storable_text_always_passes_the_rule_and_keeps_what_already_did(text: str) -> None:
    kept = storable(text)
    assert pg_text_problem(kept) is None
    assert len(kept) == len(text)
    if pg_text_problem(text) is None:
        assert kept == text

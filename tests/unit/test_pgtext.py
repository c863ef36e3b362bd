"""The text rule: what PostgreSQL ``text`` cannot store is named, refused, or replaced."""

from __future__ import annotations

from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from hexcast.core.pgtext import PG_TEXT, PgText, pg_text_problem, storable


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


class _Limited(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=3), PG_TEXT]
    note: Annotated[str | None, Field(max_length=3), PG_TEXT] = None


@pytest.mark.parametrize(("body", "says"), [
    ({"name": ""}, "String should have at least 1 character"),
    ({"name": "abcd"}, "String should have at most 3 characters"),
    ({"name": "ab", "note": "abcd"}, "String should have at most 3 characters"),
    ({"name": "a\x00"}, "contains NUL (\\u0000) at position 1"),
    ({"name": "a\ud800"}, "contains a lone surrogate (\\ud800) at position 1"),
    ({"name": "ab", "note": "\udfff"}, "contains a lone surrogate (\\udfff) at position 0"),
])
def test_limits_sit_on_the_string_and_unstorable_text_is_still_named(body: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Limited.model_validate(body)
    assert says in str(caught.value)


def test_a_limited_text_may_be_none_or_storable() -> None:
    assert _Limited.model_validate({"name": "abc"}).note is None
    assert _Limited.model_validate({"name": "é😀", "note": "ok"}).name == "é😀"

"""Segment counting and templates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexcast.core.errors import InvalidInput
from sender.text import placeholders, render, segment_count, segment_info, validate_template


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("ж" * 70, "UCS-2", 1),
        ("ж" * 71, "UCS-2", 2),
        ("ж" * 134, "UCS-2", 2),
        ("ж" * 135, "UCS-2", 3),
        ("€" * 80, "GSM-7", 1),  # 160 septets: the euro sign costs two
        ("€" * 81, "GSM-7", 2),
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 2),  # the escape pair is never split
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),
        ("😀" * 35, "UCS-2", 1),  # a surrogate pair is two UTF-16 units
        ("😀" * 36, "UCS-2", 2),
        ("", "GSM-7", 0),
    ],
)
def test_segment_table(text: str, encoding: str, segments: int) -> None:
    info = segment_info(text)
    assert info.encoding == encoding
    assert info.segments == segments


@given(st.text(alphabet="abc€{}", max_size=700))
def test_gsm_segments_bounded_by_units(text: str) -> None:
    info = segment_info(text)
    if info.units > 160:
        assert info.segments >= -(-info.units // 153)
        assert info.segments <= -(-info.units // 152)


def test_templates() -> None:
    assert placeholders("Hi {first_name}, {{literal}} {city}") == ["first_name", "city"]
    assert render("Hi {first_name}{x}!", {"first_name": "Ana"}) == "Hi Ana!"
    assert validate_template("Hi {first_name}", {"first_name"}) == ["first_name"]
    with pytest.raises(InvalidInput, match="unknown placeholder"):
        validate_template("Hi {nickname}", {"first_name"})
    with pytest.raises(InvalidInput, match="plain field name"):
        placeholders("{user.__class__}")
    with pytest.raises(InvalidInput, match="malformed"):
        placeholders("Hi {first_name")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(
    "abcXYZ 019!?@_$^{}\\[~]|`\n\r\x0c\x01€éü😀中"), max_size=400))
def test_segment_count_fast_path_agrees_with_segment_info(text: str) -> None:
    assert segment_count(text) == segment_info(text).segments

"""Standard JSON only, with the position of what is not."""

from __future__ import annotations

import pytest

from hexcast.core import strictjson


@pytest.mark.parametrize(("raw", "says"), [
    ('{"lat": NaN}', "NaN is not valid JSON: line 1 column 9 (char 8)"),
    (b'{"a": [1,\n  2,\n  -Infinity]}', "-Infinity is not valid JSON: line 3 column 3 (char 17)"),
    ('{"note": "NaN, Infinity \\" NaN",\n "x": Infinity}', "Infinity is not valid JSON: line 2 column 7"),
    ("[Infinity, NaN]", "Infinity is not valid JSON: line 1 column 2 (char 1)"),
])
def test_a_constant_is_named_where_it_stands(raw: str | bytes, says: str) -> None:
    with pytest.raises(strictjson.MalformedJSON) as caught:
        strictjson.loads(raw)
    assert str(caught.value).startswith(says)
    assert caught.value.reason == says.split(":")[0]
    assert caught.value.field == "body"


def test_the_same_constants_inside_strings_are_text() -> None:
    assert strictjson.loads('{"s": "NaN -Infinity"}') == {"s": "NaN -Infinity"}


def test_an_integer_longer_than_python_converts_is_malformed_not_a_crash() -> None:
    with pytest.raises(strictjson.MalformedJSON, match="more than 4300 digits"):
        strictjson.loads("1" * 5000)

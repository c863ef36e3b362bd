"""``HEXCAST_PROVIDERS_FILE`` in TOML or YAML: the same routes file in either format gives the
same routes, and each mistake gives the same message naming the route and field; a YAML file
that does not parse, or whose top level is not a mapping, names the file (and the line).
(The CLI run as a real process, and secret files, are in tests/integration/test_routes_file.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hexcast.core.errors import ConfigError
from hexcast.core.settings import get_settings
from sender.cli import providers_app
from sender.routes_file import load_routes

TOML = """
[[route]]
name = "twilio-us"
kind = "twilio"
account = "AC0123456789abcdef0123456789abcdef"
token = { env = "HX_TEST_TWILIO_TOKEN" }
sender_id = "+13125550100"
lanes = ["otp", "geo"]
mps = 10

[[route]]
name = "sinch-bulk"
kind = "sinch"
account = "plan-1"
sender_id = "Hexcast"
token = { env = "HX_TEST_SINCH_TOKEN" }
lanes = ["bulk"]
weight = 3
countries = ["US", "NO"]
"""

YAML = """
route:
  - name: twilio-us
    kind: twilio
    account: AC0123456789abcdef0123456789abcdef
    token: { env: HX_TEST_TWILIO_TOKEN }
    sender_id: "+13125550100"
    lanes: [otp, geo]
    mps: 10

  - name: sinch-bulk
    kind: sinch
    account: plan-1
    sender_id: Hexcast
    token: { env: HX_TEST_SINCH_TOKEN }
    lanes: [bulk]
    weight: 3
    countries: [US, "NO"]
"""

FORMATS = {"toml": TOML, "yaml": YAML}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HX_TEST_TWILIO_TOKEN", "twilio-secret-value")
    monkeypatch.setenv("HX_TEST_SINCH_TOKEN", "sinch-secret-value")


def _write(tmp_path: Path, fmt: str, text: str | None = None, suffix: str | None = None) -> str:
    path = tmp_path / f"routes.{suffix or fmt}"
    path.write_text(FORMATS[fmt] if text is None else text)
    return str(path)


def _changed(fmt: str, change: tuple[str, str]) -> str:
    text = FORMATS[fmt]
    assert change[0] in text, change
    return text.replace(change[0], change[1], 1)


@pytest.mark.parametrize("suffix", ["yaml", "yml", "YAML"])
def test_a_yaml_file_gives_the_same_routes_as_its_toml_twin(tmp_path: Path, suffix: str) -> None:
    from_toml = load_routes(_write(tmp_path, "toml"))
    from_yaml = load_routes(_write(tmp_path, "yaml", suffix=suffix))
    assert from_yaml == from_toml
    twilio, sinch = from_yaml
    assert (twilio.name, twilio.kind, twilio.sender_id, twilio.rate_per_s, [x.value for x in twilio.lanes]) \
        == ("twilio-us", "twilio", "+13125550100", 10.0, ["otp", "geo"])
    assert (sinch.name, sinch.account, sinch.weight, sinch.countries) == ("sinch-bulk", "plan-1", 3,
                                                                          ["US", "NO"])
    assert "secret-value" not in repr(from_yaml)


# (the TOML change, the same change in YAML, the message both give)
MISTAKES = [
    pytest.param(('kind = "twilio"', 'kind = "carrier-pigeon"'), ("kind: twilio", "kind: carrier-pigeon"),
                 "route 'twilio-us': kind: Input should be", id="unknown-kind"),
    pytest.param(('name = "sinch-bulk"', 'name = "twilio-us"'), ("name: sinch-bulk", "name: twilio-us"),
                 "duplicate route name 'twilio-us'", id="duplicate-name"),
    pytest.param(("mps = 10", "mps = 0"), ("mps: 10", "mps: 0"),
                 "route 'twilio-us': mps: Input should be greater than 0", id="mps-zero"),
    pytest.param(('account = "plan-1"\n', ""), ("    account: plan-1\n", ""),
                 "route 'sinch-bulk': a sinch route needs its service plan id", id="no-account"),
    pytest.param(('token = { env = "HX_TEST_TWILIO_TOKEN" }', 'token = "in-the-file"'),
                 ("token: { env: HX_TEST_TWILIO_TOKEN }", "token: in-the-file"),
                 "route 'twilio-us': token: Input should be a valid dictionary", id="secret-in-file"),
    pytest.param(("HX_TEST_SINCH_TOKEN", "HX_TEST_UNSET_TOKEN"),
                 ("HX_TEST_SINCH_TOKEN", "HX_TEST_UNSET_TOKEN"),
                 "route 'sinch-bulk': environment variable HX_TEST_UNSET_TOKEN is not set", id="unset-env"),
    pytest.param(("weight = 3", "weight = 3\nsurprise = 1"), ("weight: 3", "weight: 3\n    surprise: 1"),
                 "route 'sinch-bulk': surprise: Extra inputs", id="unknown-field"),
    pytest.param(('lanes = ["bulk"]', 'lanes = ["carrier"]'), ("lanes: [bulk]", "lanes: [carrier]"),
                 "route 'sinch-bulk': lanes.0: Input should be", id="unknown-lane"),
]


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
@pytest.mark.parametrize(("toml_change", "yaml_change", "message"), MISTAKES)
def test_each_mistake_names_the_route_and_field_in_either_format(
    tmp_path: Path, fmt: str, toml_change: tuple[str, str], yaml_change: tuple[str, str],
    message: str,
) -> None:
    text = _changed(fmt, toml_change if fmt == "toml" else yaml_change)
    path = _write(tmp_path, fmt, text)
    with pytest.raises(ConfigError) as caught:
        load_routes(path)
    assert str(caught.value).startswith(f"providers file {path}: {message}")


@pytest.mark.parametrize(("fmt", "text", "message"), [
    ("toml", TOML.replace("[[route]]", "[[routes]]"), "no [[route]] tables"),
    ("yaml", YAML.replace("route:", "routes:"), "no 'route:' list"),
    ("yaml", "route: []\n", "no 'route:' list"),
    ("yaml", "route: twilio-us\n", "no 'route:' list"),
])
def test_a_file_without_routes_says_what_it_lacks(tmp_path: Path, fmt: str, text: str, message: str) -> None:
    path = _write(tmp_path, fmt, text)
    with pytest.raises(ConfigError) as caught:
        load_routes(path)
    assert str(caught.value) == f"providers file {path}: {message}"


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "yaml", YAML.replace("lanes: [otp, geo]", "lanes: [otp, geo"))
    with pytest.raises(ConfigError) as caught:
        load_routes(path)
    assert str(caught.value) == (
        f"providers file {path}: not YAML: line 9, column 8: while parsing a flow sequence begun"
        " on line 8, expected ',' or ']', but got ':'")


@pytest.mark.parametrize(("text", "found"), [
    ("- name: twilio-us\n  kind: twilio\n", "a list"),
    ("twilio-us\n", "a str"),
    ("", "empty"),
    ("# only a comment\n", "empty"),
])
def test_a_yaml_top_level_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str, found: str) -> None:
    path = _write(tmp_path, "yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_routes(path)
    assert str(caught.value) == (f"providers file {path}: the top level is {found}, not a mapping"
                                 " (route: followed by a list of routes)")


def test_a_yaml_key_given_twice_is_refused_as_in_toml(tmp_path: Path) -> None:
    twice = "token: { env: HX_TEST_SINCH_TOKEN }\n    token: { env: HX_TEST_TWILIO_TOKEN }"
    path = _write(tmp_path, "yaml", _changed("yaml", ("token: { env: HX_TEST_SINCH_TOKEN }", twice)))
    with pytest.raises(ConfigError, match=r"not YAML: line 16, column 5: key 'token' given twice"):
        load_routes(path)
    toml_path = _write(tmp_path, "toml", _changed("toml", ("weight = 3", "weight = 3\nweight = 4")))
    with pytest.raises(ConfigError, match="not TOML"):
        load_routes(toml_path)


def test_yaml_merge_keys_may_repeat_what_they_override(tmp_path: Path) -> None:
    text = YAML.replace("  - name: sinch-bulk", "  - &sinch\n    name: sinch-bulk") + (
        "  - <<: *sinch\n    name: sinch-eu\n    countries: [DE]\n")
    names = [(s.name, s.countries) for s in load_routes(_write(tmp_path, "yaml", text))]
    assert names == [("twilio-us", None), ("sinch-bulk", ["US", "NO"]), ("sinch-eu", ["DE"])]


@pytest.mark.parametrize(("change", "field"), [
    (('sender_id: "+13125550100"', "sender_id: +13125550100"), "sender_id"),
    (('countries: [US, "NO"]', "countries: [US, NO]"), "countries.1"),
])
def test_an_unquoted_yaml_number_or_no_says_to_quote_it(
    tmp_path: Path, change: tuple[str, str], field: str,
) -> None:
    path = _write(tmp_path, "yaml", _changed("yaml", change))
    with pytest.raises(ConfigError) as caught:
        load_routes(path)
    assert f": {field}: Input should be a valid string (quote it in YAML" in str(caught.value)


@pytest.mark.parametrize("name", ["routes.json", "routes.ini", "routes"])
def test_an_unknown_suffix_is_refused_before_reading(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(TOML)
    with pytest.raises(ConfigError, match=r"unknown suffix .*: name it \.toml, \.yaml or \.yml"):
        load_routes(str(path))


@pytest.mark.parametrize(("text", "code", "said"), [
    (YAML, 0, "2 route(s) valid"),
    (YAML.replace("mps: 10", "mps: 0"), 2, "route 'twilio-us': mps: Input should be greater than 0"),
    (YAML.replace("lanes: [otp, geo]", "lanes: [otp, geo"), 2,
     "not YAML: line 9, column 8: while parsing a flow sequence"),
    ("- name: twilio-us\n", 2, "the top level is a list, not a mapping"),
])
def test_providers_check_reads_a_yaml_file_and_exits_non_zero_on_its_mistakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, code: int, said: str,
) -> None:
    monkeypatch.setenv("HEXCAST_PROVIDERS_FILE", _write(tmp_path, "yaml", text))
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(providers_app, ["check"])
    finally:
        get_settings.cache_clear()
    assert done.exit_code == code, done.output
    assert said in done.output
    assert "secret-value" not in done.output

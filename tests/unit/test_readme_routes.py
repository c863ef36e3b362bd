"""The README's routes files (its TOML and YAML failover examples) load through
``load_routes`` as they are printed, give the same routes, and do what the text says: Twilio
takes all the traffic, Sinch only what Twilio cannot (drained, or beyond its capacity)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sender.capacity import lane_capacity
from sender.models import Lane, ProviderSpec
from sender.routes_file import load_routes

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Sending through real providers"
_BLOCK = re.compile(r"^```(toml|yaml)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_ENV = re.compile(r"""env\s*[=:]\s*"?([A-Za-z_][A-Za-z0-9_]*)""")
_FILE = re.compile(r"""file\s*[=:]\s*"?(/[^"\s}]+)""")


def _blocks() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION) + len(SECTION)
    end = re.compile(r"^##", re.MULTILINE).search(text, start)  # the next heading, ## or ###
    section = text[start: end.start() if end else len(text)]
    blocks = {fmt: body for fmt, body in _BLOCK.findall(section)}
    assert set(blocks) == {"toml", "yaml"}, "the section's routes examples are gone"
    return blocks


def _load(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[ProviderSpec]:
    """The README's ``fmt`` block as a routes file: each variable it names set, each secret
    file it names made under ``tmp_path`` (the block's paths, such as /run/secrets, swapped)."""
    body = _blocks()[fmt]
    for name in _ENV.findall(body):
        monkeypatch.setenv(name, f"value-of-{name}")
    for secret in _FILE.findall(body):
        local = tmp_path / Path(secret).name
        local.write_text(f"content-of-{local.name}\n")
        body = body.replace(secret, str(local))
    path = tmp_path / f"routes.{fmt}"
    path.write_text(body)
    return load_routes(str(path))


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_the_readme_routes_file_loads_as_printed(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    twilio, sinch = _load(fmt, tmp_path, monkeypatch)
    assert (twilio.name, twilio.kind, twilio.priority, twilio.rate_per_s) == ("twilio-us", "twilio", 1, 10.0)
    assert (sinch.name, sinch.kind, sinch.priority, sinch.rate_per_s) == ("sinch-us", "sinch", 2, 30.0)
    assert sinch.countries == ["US", "CA"]
    assert twilio.token.get_secret_value() == "value-of-TWILIO_AUTH_TOKEN"
    assert sinch.token.get_secret_value() == "content-of-sinch_token"


def test_the_yaml_example_is_the_toml_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load("yaml", tmp_path, monkeypatch) == _load("toml", tmp_path, monkeypatch)


@pytest.mark.parametrize(("pace", "drained", "expected"), [
    (5.0, frozenset(), {"twilio-us": 5.0, "sinch-us": 0.0}),  # Sinch idle while Twilio copes
    (10.0, frozenset(), {"twilio-us": 10.0, "sinch-us": 0.0}),
    (25.0, frozenset(), {"twilio-us": 10.0, "sinch-us": 15.0}),  # only what Twilio cannot take
    (5.0, frozenset({"twilio-us"}), {"sinch-us": 5.0}),  # Twilio drained: all to Sinch
])
def test_the_readme_example_fails_over_to_sinch_only_when_twilio_cannot_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pace: float, drained: frozenset[str],
    expected: dict[str, float],
) -> None:
    specs = _load("toml", tmp_path, monkeypatch)
    capacity = lane_capacity(specs, Lane.OTP, tenant=1, default_rate=100.0, transactional_share=0.2,
                             bulk_share=0.5, unavailable=drained)
    assert capacity.split(pace) == pytest.approx(expected)

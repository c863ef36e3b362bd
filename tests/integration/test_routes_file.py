"""``HEXCAST_PROVIDERS_FILE`` and ``hexcast providers check``, run as the real CLI: a valid file
lists its routes; each kind of mistake exits non-zero with a message naming the route and the
field; secrets come from the environment or a file and are never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hexcast.core.errors import ConfigError
from sender.routes_file import load_routes

ROUTES = """
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
token = { file = "SECRET_FILE" }
lanes = ["bulk"]
weight = 3
"""


def _check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hexcast", "providers", "check"], capture_output=True, text=True,
        env={**os.environ, "HEXCAST_PROVIDERS_FILE": str(path), **env}, timeout=60, check=False)


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    secret = tmp_path / "sinch-token"
    secret.write_text("sinch-secret-value\n")
    path = tmp_path / "routes.toml"
    path.write_text(ROUTES.replace("SECRET_FILE", str(secret)))
    return path


def test_a_valid_file_lists_its_routes_and_prints_no_secret(routes: Path) -> None:
    done = _check(routes, {"HX_TEST_TWILIO_TOKEN": "twilio-secret-value"})
    assert done.returncode == 0, done.stderr
    assert "twilio-us: twilio at https://api.twilio.com, lanes otp,geo, weight 1" in done.stdout
    assert "sinch-bulk: sinch at https://us.sms.api.sinch.com, lanes bulk, weight 3" in done.stdout
    assert "secret-value" not in done.stdout + done.stderr


def test_the_specs_carry_the_secrets_read(routes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HX_TEST_TWILIO_TOKEN", "twilio-secret-value")
    twilio, sinch = load_routes(str(routes))
    assert (twilio.token.get_secret_value(), twilio.rate_per_s, sinch.token.get_secret_value()) == (
        "twilio-secret-value", 10.0, "sinch-secret-value")
    assert "secret" not in repr(twilio) + repr(sinch)


@pytest.mark.parametrize(("change", "message"), [
    (("", ""), "route 'twilio-us': environment variable HX_TEST_TWILIO_TOKEN is not set"),
    (('kind = "twilio"', 'kind = "carrier-pigeon"'), "route 'twilio-us': kind: Input should be"),
    (('name = "sinch-bulk"', 'name = "twilio-us"'), "duplicate route name 'twilio-us'"),
    (("mps = 10", "mps = 0"), "route 'twilio-us': mps: Input should be greater than 0"),
    (('account = "plan-1"\n', ""), "route 'sinch-bulk': a sinch route needs its service plan id"),
    (('token = { env = "HX_TEST_TWILIO_TOKEN" }', 'token = "in-the-file"'),
     "route 'twilio-us': token: Input should be a valid dictionary"),
    (("weight = 3", "weight = 3\nsurprise = 1"), "route 'sinch-bulk': surprise: Extra inputs"),
])
def test_each_mistake_names_the_route_and_field(
    routes: Path, change: tuple[str, str], message: str,
) -> None:
    text = routes.read_text()
    if change[0]:
        text = text.replace(change[0], change[1], 1)
    routes.write_text(text)
    env = {"HX_TEST_TWILIO_TOKEN": "x"} if change[0] else {}
    done = _check(routes, env)
    assert done.returncode == 2
    assert message in done.stderr


def test_a_missing_or_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_routes(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[[route]\nname=")
    with pytest.raises(ConfigError, match="not TOML"):
        load_routes(str(bad))


SMSC = """
[[route]]
name = "carrier-a"
kind = "smpp"
url = "smpp://127.0.0.1:2775"
account = "hexcast"
token = { env = "HX_TEST_SMPP_PASSWORD" }
sender_id = "+13125550100"
[route.smpp]
window = 50
long_messages = "udh"
"""


@pytest.mark.parametrize(("change", "message"), [
    (("window = 50", "window = 0"), "route 'carrier-a': smpp.window: Input should be greater"),
    (('long_messages = "udh"', 'long_messages = "latin9"'),
     "route 'carrier-a': smpp.long_messages: Input should be 'udh', 'sar' or 'payload'"),
    (("", ""), "route 'carrier-a': environment variable HX_TEST_SMPP_PASSWORD is not set"),
    (("HX_TEST_SMPP_PASSWORD", "HX_TEST_SMPP_LONG"),
     "route 'carrier-a': token: an SMPP password has 1 to 8 characters"),
    (('url = "smpp://127.0.0.1:2775"', 'url = "https://smsc.example.com"'),
     "route 'carrier-a': url: an smpp route (and only an smpp route) has an smpp://host:port url"),
])
def test_an_smsc_route_mistake_names_the_route_and_field(
    tmp_path: Path, change: tuple[str, str], message: str,
) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(SMSC.replace(change[0], change[1], 1) if change[0] else SMSC)
    env = {"HX_TEST_SMPP_PASSWORD": "secret", "HX_TEST_SMPP_LONG": "much-too-long"}
    done = _check(path, env if change[0] else {})
    assert done.returncode == 2
    assert message in done.stderr


def test_a_valid_smsc_route_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(SMSC)
    done = _check(path, {"HX_TEST_SMPP_PASSWORD": "secret"})
    assert done.returncode == 0, done.stderr
    assert "carrier-a: smpp at smpp://127.0.0.1:2775" in done.stdout

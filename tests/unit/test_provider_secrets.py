"""A route's credentials (``token``, ``webhook_key``; an SMPP route's password is its ``token``)
are pydantic ``SecretStr``: repr, str, both dumps and a structlog event bound with the spec or
its dump show ``**********``, never a value; a bad ``HEXCAST_SENDER_PROVIDERS`` list is refused
without echoing them; plain strings in that JSON still load, and the adapters read the values."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from hexcast.core.errors import ConfigError
from hexcast.core.settings import load_settings
from sender.models import ProviderSpec
from sender.providers import callbacks_for
from sender.routing import provider_specs

TOKEN, HOOK_KEY, PASSWORD = "tok-3f9a1c5e", "hook-77e2b0d4", "pw-81c2"
SECRETS = (TOKEN, HOOK_KEY, PASSWORD)

SPECS = {
    "twilio": ProviderSpec(name="tw", kind="twilio", token=TOKEN, webhook_key=HOOK_KEY,
                           account="AC" + "1" * 32, sender_id="+13125550100"),
    "generic": ProviderSpec(name="gen", url="https://gw.example.com", token=TOKEN,
                            webhook_key=HOOK_KEY),
    "smpp": ProviderSpec(name="smsc", kind="smpp", url="smpp://smsc.example.com:2775",
                         account="hexcast", token=PASSWORD),
}


def _views(spec: ProviderSpec) -> dict[str, str]:
    return {"repr": repr(spec), "str": str(spec), "format": f"{spec}",
            "model_dump": str(spec.model_dump()), "model_dump_json": spec.model_dump_json(),
            "json of the json dump": json.dumps(spec.model_dump(mode="json"))}


@pytest.mark.parametrize("kind", list(SPECS))
def test_no_view_of_a_spec_shows_a_secret(kind: str) -> None:
    spec = SPECS[kind]
    for view, text in _views(spec).items():
        assert spec.name in text, view
        assert not [s for s in SECRETS if s in text], view
    assert spec.model_dump(mode="json")["token"] == "**********"


@pytest.mark.parametrize("renderer", [structlog.processors.JSONRenderer(),
                                      structlog.dev.ConsoleRenderer(colors=False)],
                         ids=["json", "console"])
def test_a_log_event_bound_with_a_spec_or_its_dump_shows_no_secret(
    renderer: structlog.types.Processor,
) -> None:
    out = io.StringIO()  # the two renderers hexcast.core.logging.configure_logging uses
    log = structlog.wrap_logger(structlog.PrintLogger(out), processors=[
        structlog.processors.add_log_level, renderer])
    for spec in SPECS.values():
        log.bind(route=spec).info("route loaded", dump=spec.model_dump(),
                                  json_dump=spec.model_dump(mode="json"), specs=[spec])
    text = out.getvalue()
    assert len(text.splitlines()) == len(SPECS)
    assert all(spec.name in text for spec in SPECS.values())
    assert not [s for s in SECRETS if s in text]


def test_the_json_setting_takes_plain_strings_and_the_adapter_reads_the_value() -> None:
    value = json.dumps([{"name": "gen", "url": "https://gw.example.com", "token": TOKEN,
                         "webhook_key": HOOK_KEY}])
    [spec] = provider_specs(load_settings(sender_providers=value))
    assert spec.token.get_secret_value() == TOKEN
    assert spec.webhook_key is not None
    assert spec.webhook_key.get_secret_value() == HOOK_KEY
    checker = callbacks_for(spec)  # the generic receipts' Bearer <webhook_key>
    assert checker.verify(url="https://api.example.com/x",
                          headers={"authorization": f"Bearer {HOOK_KEY}"}, body=b"{}")
    assert not checker.verify(url="https://api.example.com/x",
                              headers={"authorization": "Bearer **********"}, body=b"{}")


@pytest.mark.parametrize(("route", "problem"), [
    ({"name": "tw", "kind": "twilio", "token": TOKEN, "webhook_key": HOOK_KEY},
     "a twilio route needs its Account SID"),
    ({"name": "smsc", "kind": "smpp", "url": "smpp://h:2775", "account": "x", "token": TOKEN},
     "an SMPP password has 1 to 8 characters"),
], ids=["twilio-without-account", "smpp-password-too-long"])
def test_a_refused_json_route_names_the_problem_not_the_secrets(
    route: dict[str, str], problem: str,
) -> None:
    with pytest.raises(ConfigError, match="HEXCAST_SENDER_PROVIDERS") as refused:
        provider_specs(load_settings(sender_providers=json.dumps([route])))
    assert problem in str(refused.value)
    assert not [s for s in SECRETS if s in str(refused.value)]

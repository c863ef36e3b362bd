"""Schemathesis against the real api: every operation of its OpenAPI spec (none excluded), with
a tenant key, the webhook and operator tokens and real ids, answers no 5xx and only what its
schema documents.

The api runs beside provider-sim and an otp-lane sender, so the OTP posted while seeding becomes
a real message (with a provider id for the receipt webhooks). Generated cases get real ids and
plausible values mixed into their path parameters and bodies (a zone name, a phone number: what
a JSON schema cannot describe), so they reach the database instead of stopping at validation,
and hostile text (NUL, a lone surrogate, 6 kB) into some of their generated strings. Checks:
``not_a_server_error`` and ``response_schema_conformance``; a fixed seed (derandomized) and
:data:`MAX_EXAMPLES` fuzzing examples per operation, beside the coverage phase's own cases.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import CoveragePhaseData
from schemathesis.specs.openapi.checks import response_schema_conformance

from hexcast.api import create_app
from hexcast.core.kafka import delete_topics
from hexcast.core.settings import load_settings
from hexcast.core.topics import create_topics, topic_specs
from hexcast.testing import (
    Stack,
    created,
    eventually,
    make_settings,
    make_tenant,
    recipient_body,
    seed_objects,
)
from sender.links import shorten
from sender.links_repo import save_links

T = TypeVar("T")
SEED = 17
MAX_EXAMPLES = 60
"""Fuzzing examples per operation (the coverage phase adds its boundary cases)."""
CHECKS = [not_a_server_error, response_schema_conformance]
WEBHOOK_TOKEN = "fuzz-webhook-token"
PROCESSES = {"provider-sim": ["provider-sim"], "api": ["api"], "sender-otp": ["sender", "--lane", "otp"]}

SPEC: dict[str, Any] = create_app(load_settings()).openapi()
"""The api's spec, built in-process: schemathesis parametrizes at collection, before the api
runs (its ``from_fixture`` loader fails on pytest 9.2), and a test checks that the running api
serves exactly this spec."""

NOW = datetime.now(UTC).isoformat()
PLAUSIBLE: dict[str, list[Any]] = {
    "time_zone": ["America/Chicago", "Asia/Kathmandu"],
    "time_zones": [["America/New_York"]],
    "phone": ["+13125550142", "+447911123456"],
    "from": ["+13125550143"],
    "cron": [None, "0 9 * * 1-5"],
    "run_at": ["2031-03-14T09:00:00"],
    "body": ["Hi {first_name}, 20% off today"],
    "segment": [{"everyone": True}],
    "trigger": ["dwell"],
    "hours": [{"start": "22:00:00", "end": "02:00:00"}],
    "interests": [["electronics"]],
    "ts": [NOW],
    "at": [NOW],
}
"""Values of fields whose JSON schema cannot say what is valid (a zone name, a template), by
field name, anywhere in a body: offered beside the generated value."""
_SEEDED: dict[str, list[Any]] = {}
"""Real ids by path parameter or body field name (store_id, client_ref...), offered the same
way; filled by the ``seeded`` fixture before any case is drawn."""

LONE_SURROGATE = "\ue000"
"""Stands for a lone surrogate until a JSON body is serialized (schemathesis checks the cases
it generates with a validator that cannot hold one)."""
HOSTILE = ("\x00", LONE_SURROGATE)
"""What PostgreSQL text cannot store, put into some generated strings of JSON bodies (URLs,
forms and CSV carry NUL only: a lone surrogate has no UTF-8 form)."""
LONG = "é" * 3000
"""Appended to some generated strings: 6 kB, past a file name (a zone name is one) and a
PostgreSQL index row, for fields without a maximum length."""

Case = schemathesis.Case[Any]
Pick = Callable[[str, list[Any], Any], Any]
"""(field name, its plausible and seeded values, the generated value) -> the value to send."""
Spice = Callable[[str, tuple[str, ...]], str]
"""(a generated string, the hostile characters allowed where it goes) -> the string to send."""


def _walk(value: Any, pick: Pick, spice: Spice, hostile: tuple[str, ...]) -> Any:
    """``value`` with its strings passed through ``spice`` and then every field that has
    plausible or seeded values through ``pick``."""
    if isinstance(value, dict):
        walked = {name: _walk(item, pick, spice, hostile) for name, item in value.items()}
        return {name: _pick_field(name, item, pick) for name, item in walked.items()}
    if isinstance(value, list):
        return [_walk(item, pick, spice, hostile) for item in value]
    return spice(value, hostile) if isinstance(value, str) else value


def _pick_field(name: str, value: Any, pick: Pick) -> Any:
    options = [*PLAUSIBLE.get(name, []), *_SEEDED.get(name, [])]
    return pick(name, options, value) if options else value


def _import_row(media_type: str | None, text: str) -> str:
    """A CSV or NDJSON import of one good row carrying ``text`` as its first name."""
    row = {"user_id": "fuzz-import", "phone": "+13125550150", "time_zone": "America/Chicago"}
    if media_type == "application/x-ndjson":
        return json.dumps({**row, "first_name": text[:100]}) + "\n"
    quoted = '"' + text[:100].replace('"', '""') + '"'
    return ",".join(row) + ",first_name\n" + ",".join(row.values()) + f",{quoted}\n"


def _mix(case: Case, pick: Pick, spice: Spice) -> Case:
    """``case`` with plausible and seeded values and hostile text in path parameters and body."""
    case.path_parameters = _walk(case.path_parameters, pick, spice, HOSTILE[:1])
    json_body = case.media_type is not None and case.media_type.startswith("application/json")
    case.body = _walk(case.body, pick, spice, HOSTILE if json_body else HOSTILE[:1])
    if isinstance(case.body, str) and case.media_type in ("text/csv", "application/x-ndjson"):
        case.body = pick("", [_import_row(case.media_type, case.body)], case.body)
    return case


def flatmap_case(context: schemathesis.HookContext, case: Case) -> st.SearchStrategy[Any]:
    """Fuzzing: each such field is one of its plausible or seeded values or the generated one
    (the first plausible value is what shrinking prefers); three in ten generated strings
    turn hostile."""

    @st.composite
    def mixed(draw: st.DrawFn) -> Case:
        def spice(text: str, hostile: tuple[str, ...]) -> str:
            spiced = [bad + text[1:] for bad in hostile]
            return draw(st.sampled_from([text] * 7 + [*spiced, text + LONG]))

        return _mix(case, lambda _, options, value: draw(st.sampled_from([*options, value])), spice)

    return mixed()


def _settle(case: Case) -> None:
    """Coverage cases (built at collection, before any id exists): each such field gets its
    first plausible or seeded value, except along the part of the schema the case varies."""
    data = case.meta.phase.data if case.meta is not None else None
    if not isinstance(data, CoveragePhaseData):
        return
    parts = (data.location or "").split("/")
    varied = {parts[i + 1] for i, part in enumerate(parts[:-1]) if part == "properties"}
    if data.parameter_location == ParameterLocation.PATH:
        varied.add(str(data.parameter))
    _mix(case, lambda name, options, value: value if name in varied else options[0], lambda text, _: text)


def _json(context: schemathesis.SerializationContext, value: Any) -> bytes:
    """JSON bodies, with the stand-in sent as the lone surrogate ``\\ud800`` it stands for."""
    if isinstance(value, bytes):
        return value
    return json.dumps(value).replace("\\ue000", "\\ud800").encode()


def _ndjson(context: schemathesis.SerializationContext, value: Any) -> bytes:
    """The import's NDJSON body: a generated string as it is, anything else as one JSON line."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


schemathesis.serializer("application/json")(_json)
schemathesis.serializer("application/x-ndjson")(_ndjson)
schema = schemathesis.openapi.from_dict(SPEC, config=schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "request-timeout": 30,
}))
schema.hooks.register_hook_with_name(flatmap_case, "flatmap_case")


@dataclass(frozen=True)
class Seeded:
    """The running api and its tenant key."""

    url: str
    key: str

    def headers(self, path: str) -> dict[str, str]:
        """The tenant key, and the bearer token the provider webhooks need."""
        if path.startswith("/v1/webhooks/"):
            return {"X-API-Key": self.key, "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        return {"X-API-Key": self.key}


async def _with_conn(dsn: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    conn = await asyncpg.connect(dsn)
    try:
        return await work(conn)
    finally:
        await conn.close()


def _seed_link(dsn: str, tenant_id: int, message_key: str, url: str) -> str:
    """A short link stored as the sender stores them (only marketing lanes make links, which
    would take the scheduler and a bulk sender), so that ``/r/{code}`` has a real code."""
    link = shorten(f"Open {url}", message_key=message_key, base_url=url)[1][0]
    row = (link.code, tenant_id, message_key, link.url)
    asyncio.run(_with_conn(dsn, lambda c: save_links(c, links=[row])))
    return link.code


def _provider_id(client: httpx.Client, message_key: str) -> str | None:
    response = client.get(f"/v1/messages/{message_key}")
    provider_id: str | None = response.json()["provider_message_id"] if response.status_code == 200 else None
    return provider_id


def _seed(client: httpx.Client) -> dict[str, list[Any]]:
    """Two of each object through the API, and an OTP that the sender sends."""
    seeded = seed_objects(client, copies=2, tag="fuzz", otp_phone="+13125550199")
    # Not offered as an id, so no generated DELETE or PATCH takes it out of campaign audiences.
    created(client, "/v1/recipients", recipient_body("fuzz-audience", "+13125550120"))
    ids = seeded.by_name()
    key = ids["message_key"][0]
    sent = eventually(lambda: _provider_id(client, key), timeout=60)
    ids.update(message_key=[key], client_ref=[key], provider_message_id=[sent], MessageSid=[sent])
    return ids


@pytest.fixture(scope="module")
def seeded(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    settings = make_settings(broker_url, database_url, dlr_webhook_token=WEBHOOK_TOKEN)
    asyncio.run(create_topics(settings))
    stack = Stack(settings, Path(tmp_path_factory.mktemp("fuzz")), processes=PROCESSES)
    try:
        stack.start()
        tenant = asyncio.run(make_tenant(database_url, prefix="openapi-fuzz"))
        key = tenant.api_key
        with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": key}, timeout=30) as client:
            _SEEDED.update(_seed(client), tenant_id=[tenant.id])
        landing = f"{stack.api_url}/health"
        _SEEDED["code"] = [_seed_link(database_url, tenant.id, _SEEDED["message_key"][0], landing)]
        yield Seeded(url=stack.api_url, key=key)
    finally:
        _SEEDED.clear()
        stack.stop()
        asyncio.run(delete_topics(settings.bootstrap_servers, topic_specs(settings)))


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def test_the_fuzzed_spec_is_the_one_the_api_serves(seeded: Seeded) -> None:
    assert httpx.get(f"{seeded.url}/openapi.json").json() == SPEC


@schema.parametrize()
def test_every_operation_answers_within_its_schema(
    case: Case, seeded: Seeded, session: requests.Session
) -> None:
    _settle(case)
    case.call_and_validate(base_url=seeded.url, session=session, headers=seeded.headers(case.operation.path),
                           checks=CHECKS)

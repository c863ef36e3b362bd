"""Without credentials no route answers: every operation of the api's own OpenAPI spec, called with
no API key, no operator token and no webhook token, on real ids of a seeded tenant, is refused
with a 401 or 403, but for an explicit list of public routes.

Operations are read from ``/openapi.json``, so a new route is swept as soon as it exists; a path
or required parameter the sweep cannot fill fails the test, which must then learn it.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

import httpx
import pytest

from hexcast.testing import seed_objects
from tests.integration.apiproc import RunningApi, running_api

PUBLIC = {("get", "/health"), ("get", "/r/{code}")}
"""Operations that answer anyone: the health check and the short-link redirect."""
DOCS = ("/openapi.json", "/docs", "/redoc")
"""The framework's own routes (not in the spec): public too."""
CREDENTIALS = {"x-api-key", "authorization"}
_idempotency = count()


@pytest.fixture(scope="module")
def seeded(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[RunningApi, dict[str, str]]]:
    with running_api(broker_url, database_url, tmp_path_factory.mktemp("api"),
                     dlr_webhook_token="sweep-webhook-token") as api, \
            httpx.Client(base_url=api.url, headers={"X-API-Key": api.key}, timeout=30) as client:
        seeded = seed_objects(client, tag="sweep", otp_phone="+12125550111")
        yield api, {**seeded.first(), "tenant_id": str(api.tenant_id), "code": "Ab3dEf9h", "key_id": "1",
                    "name": "sim",  # the provider route of the default settings
                    "inbound_id": "1", "endpoint_id": "1"}  # refused before it is looked up


def _values(param: dict[str, Any], ids: dict[str, str]) -> list[str]:
    """Values to try for a path or required parameter: a seeded id, else every value of its enum."""
    if param["name"] in ids:
        return [str(ids[param["name"]])]
    schema = param.get("schema", {})
    if "enum" in schema:
        return [str(v) for v in schema["enum"]]
    if param["in"] == "header" and param["name"].lower() == "idempotency-key":
        return [f"sweep-{next(_idempotency)}"]
    raise AssertionError(f"no value for {param['in']} parameter {param['name']!r}: seed one")


def _requests(client: httpx.Client, path: str, method: str, op: dict[str, Any], ids: dict[str, str]
              ) -> list[httpx.Request]:
    """The calls that sweep one operation: each value of its path parameters, no credentials."""
    paths, headers, query = [path], dict[str, str](), dict[str, str]()
    for param in op.get("parameters", []):
        if param["in"] == "path":
            paths = [p.replace(f"{{{param['name']}}}", v) for p in paths for v in _values(param, ids)]
        elif param.get("required") and param["name"].lower() not in CREDENTIALS:
            target = headers if param["in"] == "header" else query
            target[param["name"]] = _values(param, ids)[0]
    content, media = _body(method, path, op)
    if media:
        headers["content-type"] = media
    return [client.build_request(method.upper(), p, headers=headers, params=query, content=content)
            for p in paths]


def _body(method: str, path: str, op: dict[str, Any]) -> tuple[bytes, str | None]:
    declared = list(op.get("requestBody", {}).get("content", {}))
    if not declared:
        return b"", None
    if "application/json" in declared:
        return b"{}", "application/json"
    return b"", declared[0]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, methods in spec["paths"].items() for method, op in methods.items()]


def test_no_operation_answers_without_credentials(seeded: tuple[RunningApi, dict[str, str]]) -> None:
    api, ids = seeded
    with httpx.Client(base_url=api.url, timeout=30) as anonymous:
        operations = _operations(anonymous.get("/openapi.json").json())
        assert {(m, p) for p, m, _ in operations} >= PUBLIC, "a public route left the spec"
        swept, answered = set(), {}
        for path, method, op in operations:
            if (method, path) in PUBLIC:
                continue
            for request in _requests(anonymous, path, method, op, ids):
                assert not CREDENTIALS & {k.lower() for k in request.headers}
                answered[f"{request.method} {request.url.path}"] = anonymous.send(request).status_code
                swept.add((method, path))
    assert swept == {(m, p) for p, m, _ in operations} - PUBLIC
    assert {call: status for call, status in answered.items() if status not in (401, 403)} == {}
    _unchanged(api, ids)


def _unchanged(api: RunningApi, ids: dict[str, str]) -> None:
    """The seeded objects are as they were: no refused call (cancel, delete...) acted."""
    with httpx.Client(base_url=api.url, headers={"X-API-Key": api.key}, timeout=30) as client:
        assert client.get(f"/v1/campaigns/{ids['campaign_id']}").json()["state"] == "active"
        assert client.get(f"/v1/stores/{ids['store_id']}").json()["active"] is True
        assert client.get(f"/v1/recipients/{ids['user_id']}").status_code == 200
        assert client.get(f"/v1/templates/{ids['template_id']}").status_code == 200


def test_the_public_routes_answer_anyone(seeded: tuple[RunningApi, dict[str, str]]) -> None:
    api, _ = seeded
    with httpx.Client(base_url=api.url, timeout=30) as anonymous:
        for path in (*DOCS, "/health"):
            assert anonymous.get(path).status_code == 200, path
        assert anonymous.get("/r/Ab3dEf9h").status_code == 404  # no such link; no data either


def test_a_webhook_without_its_token_learns_nothing_of_the_body(
    seeded: tuple[RunningApi, dict[str, str]],
) -> None:
    """The provider webhooks check their token before the body: a bad body without the token is
    a 401, not a 422 describing what a valid body would be."""
    api, ids = seeded
    with httpx.Client(base_url=api.url, timeout=30) as anonymous:
        for path in ("/v1/webhooks/dlr", f"/v1/webhooks/inbound/{ids['tenant_id']}"):
            answer = anonymous.post(path, json={"nothing": "valid"})
            assert answer.status_code == 401, (path, answer.text)
            assert "receipts" not in answer.text

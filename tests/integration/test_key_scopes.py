"""Scopes on every tenant route, generated from the api's own ``/openapi.json``.

Every operation is either one of the explicit non-tenant routes (public, provider webhooks
with their token, operator routes) or declares exactly one scope on ``APIKeyHeader``: a new
route without one fails here. Then each operation is called with a key of each scope on real
ids: a key whose scope does not allow the route gets a 403 naming the scope needed; a key that
is allowed gets neither 401 nor 403 (a 422 for the minimal body still proves the scope passed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hexcast.core.scopes import Scope, allows
from hexcast.testing import seed_objects
from tests.integration.apiproc import RunningApi, running_api
from tests.integration.test_unauthenticated import _requests

NOT_TENANT = {
    ("get", "/health"), ("get", "/r/{code}"),  # public
    ("post", "/v1/webhooks/inbound/{tenant_id}"), ("post", "/v1/webhooks/dlr"),  # provider token
    ("post", "/v1/webhooks/status"), ("post", "/v1/webhooks/providers/{name}"),  # provider
}
"""Operations that take no tenant key; operator routes (``OperatorToken``) are found by scheme."""


@pytest.fixture(scope="module")
def world(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[RunningApi, dict[str, str], dict[Scope, str]]]:
    """An api, a seeded tenant, a key of each scope, and a spare key for the key routes."""
    with running_api(broker_url, database_url, tmp_path_factory.mktemp("api")) as api, \
            httpx.Client(base_url=api.url, headers={"X-API-Key": api.key}, timeout=30) as admin:
        seeded = seed_objects(admin, tag="scopes", otp_phone="+12125550112")
        keys = {scope: _new_key(admin, scope) for scope in Scope}
        spare = admin.post("/v1/keys", json={"name": "spare", "scope": "send"}).json()
        ids = {**seeded.first(), "tenant_id": str(api.tenant_id), "code": "Ab3dEf9h", "name": "sim",
               "key_id": str(spare["id"]), "inbound_id": "1", "endpoint_id": "1"}
        yield api, ids, keys


def _new_key(admin: httpx.Client, scope: Scope) -> str:
    answer = admin.post("/v1/keys", json={"name": f"{scope} key", "scope": scope.value})
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["key"]
    return key


def _tenant_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], Scope]]:
    """(path, method, operation, scope needed) of every tenant operation; an operation that is
    neither listed as non-tenant nor scoped fails the test."""
    found = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            schemes = {name: scopes for req in op.get("security", []) for name, scopes in req.items()}
            if (method, path) in NOT_TENANT or "OperatorToken" in schemes:
                continue
            scopes = schemes.get("APIKeyHeader")
            assert scopes, f"{method.upper()} {path}: no scope"
            assert len(scopes) == 1, f"{method.upper()} {path}: one scope, not {scopes}"
            found.append((path, method, op, Scope(scopes[0])))
    return found


def test_every_tenant_route_declares_one_scope(world: tuple[RunningApi, dict[str, str], dict[Scope, str]]
                                               ) -> None:
    api, _, _ = world
    spec = httpx.get(f"{api.url}/openapi.json", timeout=30).json()
    needed = {(m, p): scope for p, m, _, scope in _tenant_operations(spec)}
    assert needed[("post", "/v1/visits")] is Scope.INGEST
    assert needed[("post", "/v1/messages/otp")] is Scope.SEND
    assert needed[("get", "/v1/campaigns/{campaign_id}/stats")] is Scope.MARKETER
    assert needed[("post", "/v1/keys")] is Scope.ADMIN
    assert {s for s in needed.values()} == set(Scope)


def test_each_scope_is_refused_exactly_where_it_is_insufficient(
    world: tuple[RunningApi, dict[str, str], dict[Scope, str]],
) -> None:
    api, ids, keys = world
    with httpx.Client(base_url=api.url, timeout=30) as client:
        operations = _tenant_operations(client.get("/openapi.json").json())
        wrong: dict[str, int] = {}
        for path, method, op, needed in operations:
            for held in (Scope.INGEST, Scope.SEND, Scope.MARKETER, Scope.ADMIN):  # admin last
                for request in _requests(client, path, method, op, ids):
                    request.headers["X-API-Key"] = keys[held]
                    answer = client.send(request)
                    if _wrong_answer(answer, allowed=allows(held, needed), needed=needed):
                        wrong[f"{held} {request.method} {request.url.path}"] = answer.status_code
    assert wrong == {}


def _wrong_answer(answer: httpx.Response, *, allowed: bool, needed: Scope) -> bool:
    """An allowed key refused, or a refused key not told the scope it needs."""
    if allowed:
        return answer.status_code in (401, 403)
    return answer.status_code != 403 or repr(needed.value) not in answer.text


def test_keys_made_before_scopes_are_admin(world: tuple[RunningApi, dict[str, str], dict[Scope, str]]
                                           ) -> None:
    """The tenant's first key (``hexcast tenant create``) may do everything, as before."""
    api, _, _ = world
    with httpx.Client(base_url=api.url, headers={"X-API-Key": api.key}, timeout=30) as client:
        listed = client.get("/v1/keys").json()
        assert [k["scope"] for k in listed][0] == "admin"
        assert client.get("/v1/stores").status_code == 200
        assert client.get("/v1/tenant/settings").status_code == 200

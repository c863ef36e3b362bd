"""The HTTP boundary in process: the body guard as a pure ASGI middleware, what error answers echo,
and the operator token on the routes that show every tenant's data."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from hexcast.api import create_app
from hexcast.core.bodyguard import BodyGuard, accepts, declared_media_types
from hexcast.core.echo import clip_echo, clip_text
from hexcast.core.settings import Settings
from hexcast.core.web import RequireOperator


class _Thing(BaseModel):
    name: str


async def _create(thing: _Thing) -> None:
    """A route with a JSON body."""


async def _form() -> None:
    """A route that reads a form from the raw request and documents it by hand."""


JSON_ROUTE = APIRoute("/things", _create, methods=["POST"])
FORM_ROUTE = APIRoute("/form", _form, methods=["POST"], openapi_extra={"requestBody": {
    "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}})


class _Reader:
    """An app like FastAPI's: reads the whole body, turns a failed read into a 400 of its own."""

    def __init__(self, route: APIRoute | None) -> None:
        self.route = route
        self.chunks = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.route is not None:
            scope["route"] = self.route  # the router sets it before the endpoint reads
        status = 200
        try:
            while True:
                message = await receive()
                self.chunks += 1
                if not message.get("more_body"):
                    break
        except Exception:  # what the framework does with any failed read
            status = 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})


def _call(app: _Reader, chunks: list[bytes], headers: dict[str, str], limit: int = 2500
          ) -> tuple[list[Message], int]:
    """Run the guard around ``app`` on a request of ``chunks``; the messages sent to the client
    and how many chunks the server handed out."""
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
               for i, c in enumerate(chunks)] or [{"type": "http.request", "body": b""}]
    handed = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal handed
        handed += 1
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/things",
                             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(BodyGuard(app, limit=limit)(scope, receive, send))
    return sent, handed


def _answer(sent: list[Message]) -> tuple[int, dict[str, str], Any]:
    start, body = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, json.loads(body["body"]) if body["body"] != b"app" else "app"


def test_a_chunked_body_is_refused_at_the_chunk_that_passes_the_limit() -> None:
    app = _Reader(JSON_ROUTE)
    sent, handed = _call(app, [b"x" * 1000] * 10, {"content-type": "application/json"})
    status, headers, body = _answer(sent)  # the app's own 400 never reaches the client
    assert (status, body) == (413, {"error": "PayloadTooLarge", "message": "body exceeds 2500 bytes"})
    assert headers["connection"] == "close"
    assert handed == 3  # the rest was never read
    assert app.chunks == 2


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    app = _Reader(JSON_ROUTE)
    sent, handed = _call(app, [b"x"], {"content-type": "application/json", "content-length": "2501"})
    assert _answer(sent)[0] == 413
    assert handed == 0


@pytest.mark.parametrize(("route", "content_type", "status"), [
    (JSON_ROUTE, "application/json", 200),
    (JSON_ROUTE, "Application/JSON; charset=UTF-8", 200),
    (JSON_ROUTE, "text/plain", 415),
    (JSON_ROUTE, None, 415),
    (JSON_ROUTE, "application/json; charset=latin-1", 415),
    (JSON_ROUTE, "application/x-www-form-urlencoded", 415),
    (FORM_ROUTE, "application/x-www-form-urlencoded; charset=utf-8", 200),
    (FORM_ROUTE, "application/json", 415),
    (None, "text/plain", 200),  # a route that takes no body: nothing to check it against
])
def test_a_body_must_be_of_a_media_type_its_route_declares(
    route: APIRoute | None, content_type: str | None, status: int
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    sent, _ = _call(_Reader(route), [b'{"name": "x"}'], headers)
    answered, _, body = _answer(sent)
    assert answered == status
    if status == 415:
        assert body["error"] == "UnsupportedMediaType"
        assert " or ".join(sorted(declared_media_types(route))) in body["message"]


def test_a_request_without_a_body_is_not_checked() -> None:
    sent, _ = _call(_Reader(JSON_ROUTE), [], {"content-type": "text/plain"})
    assert _answer(sent)[0] == 200


def test_declared_media_types_are_what_the_spec_documents() -> None:
    app = create_app(Settings())
    spec = app.openapi()
    routes = {(r.path, m.lower()): r for r in _api_routes(app) for m in r.methods or ()}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            documented = set(op.get("requestBody", {}).get("content", {}))
            assert declared_media_types(routes[(path, method)]) == documented, f"{method} {path}"


def _api_routes(app: FastAPI) -> list[APIRoute]:
    from fastapi.routing import iter_route_contexts

    return [c.original_route for c in iter_route_contexts(app.routes)
            if isinstance(c.original_route, APIRoute)]


def test_accepts_only_a_utf8_charset_parameter() -> None:
    json_only = frozenset({"application/json"})
    assert accepts(json_only, 'application/json; charset="utf-8"')
    assert not accepts(json_only, "application/json; boundary=x")
    assert not accepts(json_only, "application/problem+json")
    assert not accepts(json_only, "")


def test_echoes_are_cut_with_a_marker_and_stay_encodable() -> None:
    assert clip_text("x" * 250) == "x" * 200 + "…[50 more characters cut]"
    assert clip_text("a\ud800b") == "a\\ud800b"
    assert clip_echo(["y" * 300])[:10] == '["' + "y" * 8  # type: ignore[index]
    assert clip_echo({"lat": 1.5}) == {"lat": 1.5}
    assert clip_echo(b"z" * 300) == "z" * 200 + "…[100 more characters cut]"


def _metrics_app(token: str | None) -> FastAPI:
    app = FastAPI()
    app.state.settings = Settings(operator_token=token)

    @app.get("/ops", dependencies=[RequireOperator])
    async def ops() -> str:
        return "every tenant"

    from hexcast.api import _hexcast_error
    from hexcast.core.errors import HexcastError

    app.add_exception_handler(HexcastError, _hexcast_error)
    return app


async def _get(app: FastAPI, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get("/ops", headers=headers)


@pytest.mark.parametrize(("token", "headers", "status"), [
    (None, {}, 401),
    (None, {"Authorization": "Bearer anything-at-all-here"}, 401),
    ("operator-token-1234", {}, 401),
    ("operator-token-1234", {"Authorization": "Bearer operator-token-12345"}, 401),
    ("operator-token-1234", {"Authorization": "Basic operator-token-1234"}, 401),
    ("operator-token-1234", {"Authorization": "Bearer operator-token-1234"}, 200),
])
def test_operator_routes_need_the_configured_token(
    token: str | None, headers: dict[str, str], status: int
) -> None:
    response = asyncio.run(_get(_metrics_app(token), headers))
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        says = "set HEXCAST_OPERATOR_TOKEN" if token is None else "operator token"
        assert says in response.json()["message"]


def test_the_operator_routes_declare_the_operator_scheme() -> None:
    spec = create_app(Settings()).openapi()
    assert spec["components"]["securitySchemes"]["OperatorToken"] == {
        "type": "http", "scheme": "bearer",
        "description": "Operator token (HEXCAST_OPERATOR_TOKEN), for routes that show every tenant's data"}
    for path in ("/v1/admin/audit",):
        assert spec["paths"][path]["get"]["security"] == [{"OperatorToken": []}]

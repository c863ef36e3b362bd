"""The request body at the door: a size limit that holds for every transfer encoding, and the
content type its route documents.

:class:`BodyGuard` is a pure ASGI middleware around ``receive``. It counts body bytes as they
arrive (``Content-Length`` or chunked alike) and answers 413 the moment the limit is passed,
without reading the rest; a declared ``Content-Length`` over the limit is answered before
anything is read. The first body bytes are checked against the media types the matched route
declares in OpenAPI (its body parameter or its ``requestBody``): anything else is a 415.
Requests without a body, and routes that take none, are never checked.

The refusal is sent with ``Connection: close``: the unread rest of the body stays on the socket,
so the server answers and closes instead of draining it. Whatever the app then makes of the
aborted read (FastAPI turns it into a 400) is dropped, as the answer has been given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hexcast.core.echo import clip_text
from hexcast.core.logging import get_logger

__all__ = ["BodyGuard", "accepts", "declared_media_types"]

log = get_logger("hexcast.core.bodyguard")
_UTF8 = frozenset({"utf-8", "utf8"})


def declared_media_types(route: object) -> frozenset[str]:
    """The body media types ``route`` documents, as its OpenAPI operation lists them (the body
    parameter's and any hand-written ``requestBody``); empty if it takes no body."""
    if not isinstance(route, APIRoute):
        return frozenset()
    found: set[str] = set()
    if route.body_field is not None:
        found.add(getattr(route.body_field.field_info, "media_type", "application/json"))
    content = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    found.update(content)
    return frozenset(kind.lower() for kind in found)


def accepts(declared: frozenset[str], header: str | None) -> bool:
    """Whether a ``Content-Type`` header names one of the ``declared`` media types, with no
    parameter but an optional UTF-8 ``charset``."""
    if not header:
        return False
    kind, _, rest = header.partition(";")
    if kind.strip().lower() not in declared:
        return False
    for part in rest.split(";"):
        name, _, value = part.partition("=")
        if not name.strip():
            continue
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() not in _UTF8:
            return False
    return True


class _Refused(Exception):
    """The guard refused the body; the answer is sent (unless the app had already started one)."""


class _Guarded:
    """One request's ``receive`` and ``send`` as the guard sees them."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        self.scope = scope
        self.limit = limit
        self.seen = 0
        self.started = False
        self.answered = False
        self._receive = receive
        self._send = send

    def _header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return bytes(value).decode("latin-1")
        return None

    async def check_length(self) -> None:
        """413 now if the declared ``Content-Length`` is over the limit (or not a number)."""
        length = self._header(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self.refuse(413, "PayloadTooLarge", f"body exceeds {self.limit} bytes")

    async def receive(self) -> Message:
        message = await self._receive()
        body = message.get("body", b"") if message["type"] == "http.request" else b""
        if body:
            if self.seen == 0:
                await self._check_type()
            self.seen += len(body)
            if self.seen > self.limit:
                await self.refuse(413, "PayloadTooLarge", f"body exceeds {self.limit} bytes")
        return message

    async def _check_type(self) -> None:
        declared = declared_media_types(self.scope.get("route"))
        header = self._header(b"content-type")
        if declared and not accepts(declared, header):
            given = clip_text(header, 100) if header else "no content-type"
            await self.refuse(415, "UnsupportedMediaType",
                              f"{given} is not accepted here: send {' or '.join(sorted(declared))}")

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def refuse(self, status: int, error: str, message: str) -> None:
        """Answer ``status`` with our error shape and close the connection; raise _Refused to
        stop the app reading."""
        log.info("body_refused", status=status, path=self.scope.get("path"), read=self.seen)
        if not self.started:
            self.answered = True
            body = json.dumps({"error": error, "message": message}).encode()
            await self._send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]})
            await self._send({"type": "http.response.body", "body": body})
        raise _Refused(message)


class BodyGuard:
    """ASGI middleware: at most ``limit`` body bytes (``limits`` by path overrides it), in a
    media type the route declares."""

    def __init__(self, app: ASGIApp, *, limit: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guarded = _Guarded(scope, receive, send, self.limits.get(scope["path"], self.limit))
        try:
            await guarded.check_length()
            await self.app(scope, guarded.receive, guarded.send)
        except Exception:
            if not guarded.answered:
                raise

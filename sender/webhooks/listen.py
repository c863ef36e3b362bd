"""``hexcast webhook-listen``: a receiver for trying webhooks out on one machine. It checks each
request's Standard Webhooks signature with the endpoint's secret (and the timestamp: at most 5
minutes off), prints one line per event (``verified message.delivered msg-…``), and answers 204,
or 401 for a bad signature (the worker then retries it, as it would for a real endpoint)."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sender.webhooks.signing import sign

__all__ = ["describe", "serve", "verified"]

TOLERANCE_S = 300


def verified(secret: str, headers: dict[str, str], body: bytes, *, now: float) -> bool:
    """Whether one of the ``webhook-signature`` values is ``secret``'s, on a fresh timestamp."""
    try:
        webhook_id, stamp = headers["webhook-id"], int(headers["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs(now - stamp) > TOLERANCE_S:
        return False
    expected = sign(secret, webhook_id, stamp, body).encode()
    return any(hmac.compare_digest(given.encode(), expected)
               for given in headers.get("webhook-signature", "").split())


def describe(body: bytes) -> list[str]:
    """``type key`` of each event of a request (one event, or a batch: a JSON array)."""
    found: Any = json.loads(body)
    events = found if isinstance(found, list) else [found]
    return [f"{e.get('type')} {(e.get('data') or {}).get('message_key', '')}".rstrip()
            for e in events if isinstance(e, dict)]


def serve(port: int, secret: str, echo: Callable[[str], None] = print) -> None:
    """Listen on 127.0.0.1:``port`` until interrupted."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            ok = verified(secret, headers, body, now=time.time())
            for line in describe(body) if ok else ["BAD SIGNATURE: refused"]:
                echo(f"{'verified' if ok else '!'} {line}")
            self.send_response(204 if ok else 401)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            return None

    with ThreadingHTTPServer(("127.0.0.1", port), Handler) as server:
        server.serve_forever()

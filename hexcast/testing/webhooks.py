"""A webhook endpoint for tests: a real HTTP server in a background thread that keeps every
request it gets, for a test to check what a provider (or the provider simulator) called back.

Why a real server rather than a mock: the callbacks come from another process over real HTTP,
and their signatures cover the bytes, headers and URL exactly as they were sent, so the test
must see them as they came.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple, Self

from hexcast.testing.waiting import eventually

__all__ = ["RecordedRequest", "WebhookRecorder"]


class RecordedRequest(NamedTuple):
    """One request as it came: the path with its query as requested, the headers with
    lower-case names (a repeated one: its last value), the raw body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorder: WebhookRecorder) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.recorder = recorder


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        status = self.server.recorder._record(RecordedRequest(self.command, self.path, headers, body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_DELETE = do_GET = do_PATCH = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


class WebhookRecorder:
    """A webhook at ``url`` (``http://127.0.0.1:<port>``, any path under it) answering 200 to
    every request and keeping it; started and stopped as a context manager.

    ``fail_next = N`` makes it answer 500 to the next N requests, as a receiver that is down
    would: those are not kept, only counted in ``rejected`` (the sender must post them again).
    """

    def __init__(self) -> None:
        self.fail_next = 0
        self.rejected = 0
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"webhook-recorder-{self._server.server_address[1]}")

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request kept so far, in the order they came."""
        with self._lock:
            return list(self._requests)

    def at(self, path: str, about: str = "") -> list[RecordedRequest]:
        """The requests to ``path`` whose body mentions ``about``, in the order they came. A
        ``path`` with a query must be the request's exactly; one without matches the request's
        path whatever its query."""
        exact = "?" in path
        return [r for r in self.requests
                if (r.path if exact else r.path.partition("?")[0]) == path
                and about.encode() in r.body]

    def wait(self, path: str, n: int, about: str = "", *,
             timeout: float = 20.0) -> list[RecordedRequest]:
        """Exactly ``n`` (at least 1) requests of :meth:`at`, once they came; more at that
        moment fail the test (they would be duplicates), fewer after ``timeout`` seconds too."""
        if n < 1:
            raise ValueError("wait for at least one request (check `at` for none)")

        def enough() -> list[RecordedRequest] | None:
            seen = self.at(path, about)
            return seen if len(seen) >= n else None

        try:
            found = eventually(enough, timeout=timeout, every=0.05)
        except AssertionError:
            found = self.at(path, about)
        assert len(found) == n, f"{len(found)} requests at {path} about {about!r}, expected {n}"
        return found

    def _record(self, request: RecordedRequest) -> int:
        """The status to answer ``request`` with (kept when 200)."""
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.rejected += 1
                return 500
            self._requests.append(request)
            return 200

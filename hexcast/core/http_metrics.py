"""The api's HTTP metrics: requests by method, route template and status, and their duration.

:class:`RequestMetrics` is a pure ASGI middleware: it reads the status from the response's
start and the route the router matched (``scope["route"]``; the route template, never the
path, so ``/v1/messages/{key}`` is one series whatever the key). A request answered before
routing (a body refused at the door) is matched against the router's routes afterwards; one no
route matches is ``route="unmatched"``. An exception out of the app counts as a 500.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HTTP_REQUESTS", "HTTP_SECONDS", "RequestMetrics", "route_template"]

HTTP_REQUESTS = Counter("hexcast_http_requests", "HTTP requests the api answered",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("hexcast_http_request_seconds",
                         "Time from a request's arrival to the end of its answer", ["route"])
UNMATCHED = "unmatched"


def route_template(scope: Scope, router: Router | None = None) -> str:
    """The template of the route that served ``scope`` (or that ``router`` matches for it)."""
    route = scope.get("route")
    if route is None and router is not None:
        route = _matching(router.routes, scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _matching(routes: Sequence[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The first route that matches ``scope``, looked for inside included routers: FastAPI
    (0.16x) keeps an included router whole, as one entry without a path, its routes inside."""
    for route in routes:
        if route.matches(scope)[0] is Match.NONE:
            continue
        inner = getattr(route, "original_router", None)
        return (_matching(inner.routes, scope) if isinstance(inner, Router) else None) or route
    return None


class RequestMetrics:
    """ASGI middleware counting every HTTP request (``router``: the app's, to name the route of
    requests answered before routing)."""

    def __init__(self, app: ASGIApp, *, router: Router | None = None) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = route_template(scope, self.router)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)

"""The live operator console at ``/console``, served by the api.

Server-rendered pages (Jinja2 templates and one stylesheet and one script, package data; no
build step) whose live parts re-fetch HTML fragments every couple of seconds; charts are
inline SVG drawn on the server. An operator signs in with the operator token and sees every
tenant (with a tenant filter); a tenant signs in with an admin API key and sees only its own.
Where is what: ``access.py`` + ``sessions.py`` (sign-in, sessions, CSRF), ``pages.py``
(overview, message search), ``actions.py`` (campaign and route pages and their actions),
``operator_actions.py`` + ``dead_letters.py`` (the operator's: new tenants, dead letters,
unknown messages),
``overview.py``, ``campaign_page.py``, ``route_page.py``, ``search.py`` (what each shows),
``queries.py`` (its own bounded SQL), ``prometheus.py`` (rates and latencies), ``charts.py``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hexcast.console.access import SignInNeeded, sign_in_needed
from hexcast.console.actions import router as actions_router
from hexcast.console.operator_actions import router as operator_router
from hexcast.console.pages import router as pages_router

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Serve the console from ``app``: its routes, its static files and the sign-in redirect."""
    app.include_router(pages_router)
    app.include_router(actions_router)
    app.include_router(operator_router)
    app.mount("/console/static", StaticFiles(packages=[("hexcast.console", "static")]),
              name="console-static")
    app.add_exception_handler(SignInNeeded, sign_in_needed)

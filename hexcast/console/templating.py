"""The console's pages: Jinja2 templates (package data, autoescaped) rendered into answers with
the console's security headers."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

__all__ = ["SECURITY_HEADERS", "duration", "page", "render"]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self';"
                               " img-src 'self' data:; connect-src 'self'; form-action 'self';"
                               " frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Every console answer: its own script and style only (no inline code: a text a tenant
wrote can never run), never framed, never cached."""


def _when(value: datetime | None) -> str:
    """An instant as ``YYYY-MM-DD HH:MM:SSZ`` (UTC), or a dash."""
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _clock(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%H:%M:%SZ")


def _ago(value: datetime | None) -> str:
    """How long ago ``value`` was: ``42 s``, ``3 min``, ``2.5 h``."""
    if value is None:
        return "—"
    return duration((datetime.now(UTC) - value).total_seconds())


def duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    if math.isinf(seconds):
        return "never"
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.1f} %"


_ENV = Environment(loader=PackageLoader("hexcast.console", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   trim_blocks=True, lstrip_blocks=True)
_ENV.filters.update(when=_when, clock=_clock, ago=_ago, num=_num, pct=_pct, duration=duration)


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)


def page(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered as an HTML answer with the console's headers."""
    return HTMLResponse(render(template, **context), status_code=status, headers=SECURITY_HEADERS)

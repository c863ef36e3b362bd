"""Console sessions for tests: sign in through the console's own form, as a browser does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

__all__ = ["console_session", "form_token"]


def form_token(html: str, name: str) -> str:
    """The value of the hidden form field ``name`` in ``html`` (the sign-in or CSRF token)."""
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    if found is None:
        raise AssertionError(f"no {name} field in: {html[:2000]}")
    return found.group(1)


@contextmanager
def console_session(base_url: str, credential: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client signed in to ``base_url``'s console with ``credential`` (the operator token or
    a tenant's admin key), and the session's CSRF token."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        form = client.get("/console/login")
        signed = client.post("/console/login", data={
            "credential": credential, "login_token": form_token(form.text, "login_token")})
        if signed.status_code != 303 or signed.headers.get("location") != "/console":
            raise AssertionError(f"sign-in refused: {signed.status_code} {signed.text[:500]}")
        overview = client.get("/console")
        overview.raise_for_status()
        yield client, form_token(overview.text, "csrf")

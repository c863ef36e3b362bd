"""Who may see the console: the session cookie, signing in, the CSRF check, and the answers
for a missing session, a refused form and another tenant's object.

Signing in takes the operator token (every tenant) or one of a tenant's admin API keys (that
tenant only). The session cookie is HttpOnly and SameSite=Strict, Secure when the api's public
URL is https, and limited to ``/console``. Every form carries the session's CSRF token; the
sign-in form a token of its own, in a short-lived cookie (double submit).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hexcast.console.sessions import (
    SESSION_TTL,
    Principal,
    digest,
    find_session,
    open_operator_session,
    open_tenant_session,
)
from hexcast.console.templating import SECURITY_HEADERS, page
from hexcast.core.errors import Unauthorized
from hexcast.core.scopes import Scope
from hexcast.core.settings import Settings
from hexcast.core.tenants import authenticate
from hexcast.core.web import PoolDep, SettingsDep

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "PrincipalDep",
    "SignInNeeded",
    "csrf_ok",
    "forget_session",
    "keep_session",
    "login_page",
    "not_found",
    "refused",
    "same_token",
    "sign_in",
    "sign_in_needed",
]

COOKIE = "hexcast_console"
LOGIN_COOKIE = "hexcast_console_login"
_PATH = "/console"
_MAX_ID = 128  # a cookie longer than any id we hand out is not looked up


class SignInNeeded(Exception):
    """No live session: a page goes to the sign-in form, anything else is a 401."""


def _secure(settings: Settings) -> bool:
    return settings.api_public_url.startswith("https://")


def keep_session(response: Response, settings: Settings, session_id: str) -> None:
    response.set_cookie(COOKIE, session_id, max_age=int(SESSION_TTL.total_seconds()), path=_PATH,
                        httponly=True, samesite="strict", secure=_secure(settings))
    response.delete_cookie(LOGIN_COOKIE, path=_PATH)


def forget_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(COOKIE, path=_PATH, httponly=True, samesite="strict",
                           secure=_secure(settings))


def login_page(settings: Settings, *, error: str | None = None, status: int = 200) -> HTMLResponse:
    """The sign-in form with a fresh form token, also set as a 10-minute cookie (the POST must
    carry both, equal)."""
    token = secrets.token_urlsafe(24)
    response = page("login.html", status=status, principal=None, title="Sign in", error=error,
                    login_token=token)
    response.set_cookie(LOGIN_COOKIE, token, max_age=600, path=_PATH, httponly=True,
                        samesite="strict", secure=_secure(settings))
    return response


async def _principal(request: Request, pool: PoolDep, settings: SettingsDep) -> Principal:
    session_id = request.cookies.get(COOKIE, "")
    if 0 < len(session_id) <= _MAX_ID:
        token = settings.operator_token
        async with pool.acquire() as conn:
            found = await find_session(conn, session_id=session_id,
                                       token_digest=digest(token) if token else None)
        if found is not None:
            return found
    raise SignInNeeded


PrincipalDep = Annotated[Principal, Depends(_principal)]
"""The signed-in principal; without a live session the route answers :class:`SignInNeeded`."""


async def sign_in_needed(request: Request, exc: Exception) -> Response:
    """The answer to :class:`SignInNeeded`: pages go to the sign-in form; fragments and forms
    get a 401 (the page's script then goes there itself)."""
    if request.method == "GET" and not request.url.path.startswith("/console/fragments/"):
        return RedirectResponse("/console/login", status_code=303, headers=SECURITY_HEADERS)
    return page("error.html", status=401, principal=None, title="Signed out",
                message="Your console session has ended: sign in again.")


def same_token(expected: str, given: str) -> bool:
    """Whether a form's token is the one expected (neither empty), in constant time."""
    return bool(expected) and bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def csrf_ok(principal: Principal, token: str) -> bool:
    return same_token(principal.csrf_token, token)


def refused(principal: Principal | None) -> HTMLResponse:
    return page("error.html", status=403, principal=principal, title="Refused",
                message="This form did not come from your console session (its CSRF token is"
                " missing or wrong). Reload the page and try again.")


def not_found(principal: Principal, what: str) -> HTMLResponse:
    """Another tenant's object answers exactly as one that does not exist."""
    return page("error.html", status=404, principal=principal, title="Not found",
                message=f"No {what} here.")


async def sign_in(pool: asyncpg.Pool, settings: Settings, credential: str) -> str:
    """A new session's id for the operator token or a tenant's admin key; Unauthorized
    (with what to show) otherwise."""
    credential = credential.strip()
    async with pool.acquire() as conn:
        if credential.startswith("hx_"):
            tenant = await authenticate(conn, key=credential)
            if tenant.scope != Scope.ADMIN or tenant.key_id is None:
                raise Unauthorized("the console takes an admin-scoped API key; this key's scope"
                                   f" is {tenant.scope!r}")
            return await open_tenant_session(conn, tenant_id=tenant.id, key_id=tenant.key_id)
        token = settings.operator_token
        if token is None or not hmac.compare_digest(credential.encode(), token.encode()):
            raise Unauthorized("wrong operator token or API key")
        return await open_operator_session(conn, token_digest=digest(token))

"""Console routes: signing in and out, the overview (and its live fragment) and message
search. Not in the OpenAPI document: these are pages, not API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hexcast.console import queries
from hexcast.console.access import (
    COOKIE,
    LOGIN_COOKIE,
    PrincipalDep,
    csrf_ok,
    forget_session,
    keep_session,
    login_page,
    refused,
    same_token,
    sign_in,
)
from hexcast.console.overview import overview
from hexcast.console.search import By, search
from hexcast.console.sessions import Principal, close_session
from hexcast.console.templating import SECURITY_HEADERS, page
from hexcast.core.errors import Unauthorized
from hexcast.core.ids import BIGINT_MAX
from hexcast.core.pgtext import pg_text_problem
from hexcast.core.web import PoolDep, SettingsDep

__all__ = ["page_context", "router", "tenant_filter"]

router = APIRouter(prefix="/console", include_in_schema=False)

TenantQuery = Annotated[str, Query(max_length=20, description="The operator's tenant filter")]


def tenant_filter(principal: Principal, tenant: str) -> int | None:
    """The tenant a view is limited to: a tenant session's own; the operator's filter."""
    wanted = int(tenant) if tenant.isdigit() and 0 < int(tenant) <= BIGINT_MAX else None
    return principal.tenant_scope(wanted)


async def page_context(request: Request, principal: Principal, tenant: str
                   ) -> tuple[int | None, dict[str, Any]]:
    """The tenant a page is limited to, and what every page shows (the operator's filter)."""
    scope = tenant_filter(principal, tenant)
    names = []
    if principal.operator:
        async with request.app.state.pool.acquire() as conn:
            names = await queries.tenants(conn)
    return scope, {"principal": principal, "tenant": scope, "tenants": names,
                   "qs": f"?tenant={scope}" if principal.operator and scope is not None else ""}


@router.get("/login")
async def login_form(settings: SettingsDep) -> HTMLResponse:
    return login_page(settings)


@router.post("/login")
async def login(request: Request, pool: PoolDep, settings: SettingsDep,
                credential: Annotated[str, Form(max_length=512)] = "",
                form_token: Annotated[str, Form(alias="login_token", max_length=128)] = "") -> Response:
    if not same_token(request.cookies.get(LOGIN_COOKIE, ""), form_token):
        return refused(None)
    try:
        session_id = await sign_in(pool, settings, credential)
    except Unauthorized as exc:
        return login_page(settings, error=str(exc), status=401)
    answer = RedirectResponse("/console", status_code=303, headers=SECURITY_HEADERS)
    keep_session(answer, settings, session_id)
    return answer


@router.post("/logout")
async def logout(request: Request, principal: PrincipalDep, pool: PoolDep, settings: SettingsDep,
                 csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    if not csrf_ok(principal, csrf):
        return refused(principal)
    async with pool.acquire() as conn:
        await close_session(conn, session_id=request.cookies.get(COOKIE, ""))
    answer = RedirectResponse("/console/login", status_code=303, headers=SECURITY_HEADERS)
    forget_session(answer, settings)
    return answer


async def _overview_context(request: Request, principal: Principal, tenant: str) -> dict[str, Any]:
    scope, context = await page_context(request, principal, tenant)
    state = request.app.state
    async with state.pool.acquire() as conn:
        context["view"] = await overview(conn, state.redis, state.settings, tenant_id=scope,
                                         operator=principal.operator)
    return context


@router.get("")
async def overview_page(request: Request, principal: PrincipalDep, tenant: TenantQuery = "") -> HTMLResponse:
    return page("overview.html", title="Overview", **await _overview_context(request, principal, tenant))


@router.get("/fragments/overview")
async def overview_fragment(request: Request, principal: PrincipalDep, tenant: TenantQuery = ""
                            ) -> HTMLResponse:
    return page("_overview.html", **await _overview_context(request, principal, tenant))


@router.get("/messages")
async def messages_page(
    request: Request, principal: PrincipalDep, tenant: TenantQuery = "",
    q: Annotated[str, Query(max_length=256)] = "", by: By = "auto",
) -> HTMLResponse:
    scope, context = await page_context(request, principal, tenant)
    text = q.strip()
    problem = pg_text_problem(text)
    context.update(title="Messages", q=text, by=by, kind=None, found=None, error=problem)
    if text and problem is None:
        async with request.app.state.pool.acquire() as conn:
            context["kind"], context["found"] = await search(conn, text=text, by=by, tenant_id=scope)
    return page("messages.html", **context)

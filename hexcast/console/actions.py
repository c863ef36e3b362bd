"""Console routes of a campaign and of a provider route: their pages, live fragments, and the
actions on them, each confirmed on a page of its own with a reason, CSRF-checked, and done
through the same function the APIs and the CLI use.

Another tenant's campaign, and a route page for a tenant, answer 404 exactly as a missing one.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hexcast.console import campaign_page, route_page
from hexcast.console.access import PrincipalDep, csrf_ok, not_found, refused
from hexcast.console.pages import page_context
from hexcast.console.sessions import Principal
from hexcast.console.templating import SECURITY_HEADERS, page
from hexcast.core.errors import ConflictError, NotFound
from hexcast.core.pgtext import pg_text_problem
from hexcast.core.web import IdPath, TextPath
from scheduler import CampaignAction, get_campaign
from sender import RouteAction

__all__ = ["ActionForm", "CsrfForm", "ReasonForm", "reason_problem", "router"]

router = APIRouter(prefix="/console", include_in_schema=False)

ActionQuery = Annotated[str, Query(max_length=20)]
ActionForm = Annotated[str, Form(max_length=20)]
ReasonForm = Annotated[str, Form(max_length=2000)]
CsrfForm = Annotated[str, Form(max_length=128)]


def reason_problem(reason: str) -> str | None:
    if not reason.strip():
        return "give a reason: it goes to the operator audit log"
    if len(reason.strip()) > 500:
        return "the reason is at most 500 characters"
    return pg_text_problem(reason)


async def _campaign_context(request: Request, principal: Principal, campaign_id: int) -> dict[str, Any]:
    """The campaign page's context (NotFound for another tenant's campaign or none)."""
    _, context = await page_context(request, principal, "")
    state = request.app.state
    async with state.pool.acquire() as conn:
        view = await campaign_page.campaign_view(conn, state.settings, campaign_id=campaign_id,
                                                 tenant_id=principal.tenant_id)
    context.update(title=view.campaign["name"], view=view,
                   actions=campaign_page.actions_for(view.campaign["state"]),
                   stats_limit=campaign_page.STATS_LIMIT)
    return context


async def _shown(template: str, what: str, principal: Principal,
                 context: Awaitable[dict[str, Any]], **extra: Any) -> HTMLResponse:
    """``template`` with ``context``, or the 404 of ``what`` when that is NotFound."""
    try:
        return page(template, **extra, **await context)
    except NotFound:
        return not_found(principal, what)


@router.get("/campaigns/{campaign_id}")
async def campaign(request: Request, campaign_id: IdPath, principal: PrincipalDep,
                   done: ActionQuery = "") -> HTMLResponse:
    return await _shown("campaign.html", "campaign", principal,
                        _campaign_context(request, principal, campaign_id),
                        done=done if done in CampaignAction.__members__.values() else "")


@router.get("/fragments/campaigns/{campaign_id}")
async def campaign_fragment(request: Request, campaign_id: IdPath, principal: PrincipalDep) -> HTMLResponse:
    return await _shown("_campaign.html", "campaign", principal,
                        _campaign_context(request, principal, campaign_id))


async def _confirm_campaign(request: Request, principal: Principal, campaign_id: int, action: str,
                            *, error: str | None = None, reason: str = "", status: int = 200) -> Response:
    async with request.app.state.pool.acquire() as conn:
        try:
            row = await get_campaign(conn, tenant_id=principal.tenant_id, campaign_id=campaign_id)
        except NotFound:
            return not_found(principal, "campaign")
    if error is None and action not in campaign_page.actions_for(row["state"]):
        error = f"a {row['state']} campaign cannot be {action}d" if action else "no action given"
    return page("confirm.html", status=status, principal=principal, tenant=None, tenants=[], qs="",
                title=f"{action} {row['name']}", action=action, error=error, reason=reason,
                what=f"campaign {row['name']} (#{row['id']}, {row['state']})",
                post=f"/console/campaigns/{campaign_id}/actions",
                back=f"/console/campaigns/{campaign_id}")


@router.get("/campaigns/{campaign_id}/confirm")
async def confirm_campaign(request: Request, campaign_id: IdPath, principal: PrincipalDep,
                           action: ActionQuery = "") -> Response:
    return await _confirm_campaign(request, principal, campaign_id, action)


@router.post("/campaigns/{campaign_id}/actions")
async def campaign_action(request: Request, campaign_id: IdPath, principal: PrincipalDep,
                          csrf: CsrfForm = "", action: ActionForm = "", reason: ReasonForm = "") -> Response:
    if not csrf_ok(principal, csrf):
        return refused(principal)
    problem = (None if action in CampaignAction.__members__.values() else "no such action") or (
        reason_problem(reason))
    if problem is not None:
        return await _confirm_campaign(request, principal, campaign_id, action, error=problem,
                                       reason=reason, status=422)
    state = request.app.state
    try:
        await campaign_page.act(state.pool, state.redis, state.settings, principal,
                                campaign_id=campaign_id, action=CampaignAction(action),
                                reason=reason.strip())
    except NotFound:
        return not_found(principal, "campaign")
    except ConflictError as exc:
        return await _confirm_campaign(request, principal, campaign_id, action, error=str(exc),
                                       reason=reason, status=409)
    return RedirectResponse(f"/console/campaigns/{campaign_id}?done={action}", status_code=303,
                            headers=SECURITY_HEADERS)


async def _route_context(request: Request, principal: Principal, name: str) -> dict[str, Any]:
    """The route page's context (NotFound for a tenant, or no such route)."""
    if not principal.operator:
        raise NotFound(f"no provider route {name!r}")
    _, context = await page_context(request, principal, "")
    state = request.app.state
    async with state.pool.acquire() as conn:
        view = await route_page.route_view(conn, state.redis, state.settings, name=name)
    context.update(title=f"route {name}", view=view)
    return context


@router.get("/routes/{name}")
async def route(request: Request, name: TextPath, principal: PrincipalDep,
                done: ActionQuery = "") -> HTMLResponse:
    return await _shown("route.html", "route", principal, _route_context(request, principal, name),
                        done=done if done in route_page.ROUTE_ACTIONS else "")


@router.get("/fragments/routes/{name}")
async def route_fragment(request: Request, name: TextPath, principal: PrincipalDep) -> HTMLResponse:
    return await _shown("_route.html", "route", principal, _route_context(request, principal, name))


def _confirm_route(principal: Principal, name: str, action: str, *, error: str | None = None,
                   reason: str = "", status: int = 200) -> Response:
    if action not in route_page.ROUTE_ACTIONS:
        error = error or "no such action"
    return page("confirm.html", status=status, principal=principal, tenant=None, tenants=[], qs="",
                title=f"{action} {name}", action=action, error=error, reason=reason,
                what=f"provider route {name}", post=f"/console/routes/{name}/actions",
                back=f"/console/routes/{name}")


@router.get("/routes/{name}/confirm")
async def confirm_route(request: Request, name: TextPath, principal: PrincipalDep,
                        action: ActionQuery = "") -> Response:
    if not principal.operator or not route_page.known(request.app.state.settings, name):
        return not_found(principal, "route")
    return _confirm_route(principal, name, action)


@router.post("/routes/{name}/actions")
async def route_action(request: Request, name: TextPath, principal: PrincipalDep, csrf: CsrfForm = "",
                       action: ActionForm = "", reason: ReasonForm = "") -> Response:
    if not csrf_ok(principal, csrf):
        return refused(principal)
    if not principal.operator:
        return not_found(principal, "route")
    problem = (None if action in route_page.ROUTE_ACTIONS else "no such action") or reason_problem(reason)
    if problem is not None:
        return _confirm_route(principal, name, action, error=problem, reason=reason, status=422)
    state = request.app.state
    try:
        async with state.pool.acquire() as conn:
            await route_page.act(conn, state.redis, state.settings, name=name,
                                 action=RouteAction(action), actor=principal.actor, reason=reason.strip())
    except NotFound:
        return not_found(principal, "route")
    return RedirectResponse(f"/console/routes/{name}?done={action}", status_code=303,
                            headers=SECURITY_HEADERS)

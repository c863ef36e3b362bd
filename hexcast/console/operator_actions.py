"""Console routes of the operator's own controls: create a tenant with its first admin key,
requeue dead letters, resolve ``unknown`` messages. Each is confirmed on a page of its own with
a reason, CSRF-checked, and done through the functions the admin API and the CLI use
(``hexcast.ops.open_tenant``, ``sender.dlq.choose`` / ``requeue``, ``sender.unknown.resolve_one``),
which write the operator audit log.

They are the operator's only, as their admin API routes are: a tenant's session gets the 404
of a page that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import Field, ValidationError

from hexcast.admin_api import TenantOpen
from hexcast.console import dead_letters, queries
from hexcast.console.access import PrincipalDep, csrf_ok, not_found, refused
from hexcast.console.actions import ActionForm, CsrfForm, ReasonForm, reason_problem
from hexcast.console.pages import TenantQuery, page_context, tenant_filter
from hexcast.console.sessions import Principal
from hexcast.console.templating import SECURITY_HEADERS, page
from hexcast.core.cache import Keys
from hexcast.core.deadletter import DeadLetter
from hexcast.core.errors import ConflictError, HexcastError, InvalidInput, NotFound
from hexcast.core.ids import BIGINT_MAX
from hexcast.core.pgtext import pg_text_problem
from hexcast.ops import open_tenant
from sender import dlr, one_message
from sender.dlq import Selection, choose, requeue
from sender.models import Lane, delivery_records
from sender.unknown import Outcome, resolve_one

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)

NameText = Annotated[str, Query(max_length=400)]
ReasonText = Annotated[str, Query(max_length=2000)]
KeyQuery = Annotated[str, Query(max_length=256)]
KeyForm = Annotated[str, Form(max_length=256)]
Offset = Annotated[int, Field(ge=0, le=BIGINT_MAX)]
OffsetsQuery = Annotated[list[Offset] | None, Query(max_length=1000)]
OffsetsForm = Annotated[list[Offset] | None, Form(alias="offset", max_length=1000)]
Count = Annotated[int | None, Query(ge=0, le=BIGINT_MAX)]
_OUTCOMES: dict[str, Outcome] = {"delivered": "delivered", "failed": "failed"}
_SHOWN = 50  # letters named on a confirm page


def _confirm(principal: Principal, *, status: int = 200, **context: Any) -> HTMLResponse:
    """The confirm page (``action``, ``what``, ``post``, ``back``; ``verb``, ``items``,
    ``hidden`` and ``fields`` when the action needs them)."""
    return page("confirm.html", status=status, principal=principal, tenant=None, tenants=[],
                qs="", **{"error": None, "reason": "", **context})


def _name_problem(name: str) -> str | None:
    """What the admin API would refuse in this name (its ``TenantOpen`` rules), or None."""
    try:
        TenantOpen.model_validate({"name": name.strip(), "reason": "-"})
    except ValidationError as exc:
        return f"name: {exc.errors()[0]['msg']}"
    return None


# --- a new tenant and its first admin key ---------------------------------------------------

async def _tenant_form(request: Request, principal: Principal, *, name: str = "", reason: str = "",
                       error: str | None = None, status: int = 200) -> HTMLResponse:
    _, context = await page_context(request, principal, "")
    return page("tenant_new.html", status=status, title="New tenant", name=name, reason=reason,
                error=error, **context)


def _confirm_tenant(principal: Principal, name: str, *, error: str | None = None, reason: str = "",
                    status: int = 200) -> HTMLResponse:
    return _confirm(principal, status=status, title=f"create tenant {name}", action="create",
                    verb="create", what=f"the tenant {name!r} and its first admin API key",
                    error=error, reason=reason, hidden=[("name", name)], post="/console/tenants",
                    back="/console/tenants/new")


@router.get("/tenants/new")
async def new_tenant(request: Request, principal: PrincipalDep) -> Response:
    if not principal.operator:
        return not_found(principal, "page")
    return await _tenant_form(request, principal)


@router.get("/tenants/confirm")
async def confirm_tenant(request: Request, principal: PrincipalDep, name: NameText = "",
                         reason: ReasonText = "") -> Response:
    if not principal.operator:
        return not_found(principal, "page")
    problem = _name_problem(name)
    if problem is not None:
        return await _tenant_form(request, principal, name=name, reason=reason, error=problem,
                                  status=422)
    return _confirm_tenant(principal, name.strip(), reason=reason)


@router.post("/tenants")
async def create_tenant(request: Request, principal: PrincipalDep, csrf: CsrfForm = "",
                        action: ActionForm = "", name: Annotated[str, Form(max_length=400)] = "",
                        reason: ReasonForm = "") -> Response:
    if not csrf_ok(principal, csrf):
        return refused(principal)
    if not principal.operator:
        return not_found(principal, "page")
    problem = (None if action == "create" else "no such action") or _name_problem(name) or (
        reason_problem(reason))
    if problem is not None:
        return _confirm_tenant(principal, name, error=problem, reason=reason, status=422)
    try:
        async with request.app.state.pool.acquire() as conn:
            created, key = await open_tenant(conn, name=name.strip(), actor=principal.actor,
                                             reason=reason.strip())
    except InvalidInput as exc:
        return _confirm_tenant(principal, name, error=str(exc), reason=reason, status=422)
    except ConflictError as exc:
        return _confirm_tenant(principal, name, error=str(exc), reason=reason, status=409)
    _, context = await page_context(request, principal, "")
    return page("tenant_created.html", status=201, title=f"Tenant {created.name}", created=created,
                api_key=key, **context)


# --- dead letters ---------------------------------------------------------------------------

def _lane(text: str) -> Lane | None:
    return Lane(text) if text in Lane.__members__.values() else None


@router.get("/dlq")
async def dlq_page(request: Request, principal: PrincipalDep, tenant: TenantQuery = "",
                   before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
                   letters: Count = None, messages: Count = None, skipped: Count = None) -> Response:
    if not principal.operator:
        return not_found(principal, "page")
    scope, context = await page_context(request, principal, tenant)
    state, view, error = request.app.state, None, None
    try:
        view = await dead_letters.dlq_view(state.settings, state.redis, tenant_id=scope, before=before)
    except HexcastError as exc:
        error = str(exc)
    result = None if letters is None else {"letters": letters, "messages": messages or 0,
                                           "skipped": skipped or 0}
    return page("dlq.html", status=200 if error is None else 503, title="Dead letters", view=view,
                error=error, result=result, page_size=dead_letters.PAGE, filter_action="/console/dlq",
                **context)


def _letter_line(offset: int, letter: DeadLetter) -> str:
    return f"#{offset} from {letter.source_topic}: {letter.reason[:160]}"


async def _confirm_dlq(request: Request, principal: Principal, offsets: list[int], lane_text: str,
                       tenant: str, *, error: str | None = None, reason: str = "", status: int = 200
                       ) -> HTMLResponse:
    """The letters the selection names (``lane``: every letter of it not requeued yet, of the
    filtered tenant only when there is one), to confirm."""
    scope, lane = tenant_filter(principal, tenant), _lane(lane_text)
    letters: list[tuple[int, DeadLetter]] = []
    if lane_text and lane is None:
        error = error or f"no lane {lane_text!r}"
    elif lane is None and not offsets:
        error = error or "choose the letters to requeue"
    else:
        try:
            letters = await dead_letters.chosen(request.app.state.settings, request.app.state.redis,
                                                offsets=offsets if lane is None else (), lane=lane,
                                                tenant_id=scope)
        except InvalidInput as exc:
            error = error or str(exc)
        if not letters:
            error = error or "no letter waits to be requeued"
    whole = lane if scope is None else None  # posted as the admin API's lane selection
    items = [_letter_line(o, d) for o, d in letters[:_SHOWN]]
    if len(letters) > _SHOWN:
        items.append(f"… and {len(letters) - _SHOWN} more")
    what = (f"every dead letter of {whole.topic} not requeued yet ({len(letters)} now)"
            if whole is not None else f"{len(letters)} dead letter{'' if len(letters) == 1 else 's'}")
    return _confirm(principal, status=status, title="requeue dead letters", action="requeue",
                    verb="requeue", what=what, items=items, error=error, reason=reason,
                    hidden=[("lane", whole.value)] if whole is not None
                    else [("offset", str(o)) for o, _ in letters],
                    post="/console/dlq/requeue", back="/console/dlq")


@router.get("/dlq/confirm")
async def confirm_dlq(request: Request, principal: PrincipalDep, offset: OffsetsQuery = None,
                      lane: Annotated[str, Query(max_length=20)] = "", tenant: TenantQuery = ""
                      ) -> Response:
    if not principal.operator:
        return not_found(principal, "page")
    return await _confirm_dlq(request, principal, offset or [], lane, tenant)


@router.post("/dlq/requeue")
async def requeue_letters(request: Request, principal: PrincipalDep, csrf: CsrfForm = "",
                          action: ActionForm = "", reason: ReasonForm = "",
                          offsets: OffsetsForm = None,
                          lane: Annotated[str, Form(max_length=20)] = "") -> Response:
    if not csrf_ok(principal, csrf):
        return refused(principal)
    if not principal.operator:
        return not_found(principal, "page")
    offset, chosen_lane = offsets or [], _lane(lane)
    problem = (None if action == "requeue" else "no such action") or reason_problem(reason) or (
        "either letters or a lane" if offset and lane else None) or (
        None if offset or chosen_lane is not None else "choose the letters to requeue")
    if problem is not None:
        return await _confirm_dlq(request, principal, offset, lane, "", error=problem, reason=reason,
                                  status=422)
    state = request.app.state
    redis, keys = state.redis, Keys(state.settings.redis_prefix)
    try:
        letters = await choose(state.settings, redis, keys,
                               Selection(offsets=tuple(offset)) if offset else Selection(lane=chosen_lane))
    except InvalidInput as exc:
        return await _confirm_dlq(request, principal, offset, lane, "", error=str(exc), reason=reason,
                                  status=422)
    done = await requeue(state.pool, redis, state.bus, keys, letters=letters, actor=principal.actor,
                         reason=reason.strip())
    counts = (f"letters={sum(1 for r in done if r.skipped is None)}"
              f"&messages={sum(r.messages for r in done)}"
              f"&skipped={sum(1 for r in done if r.skipped is not None)}")
    return RedirectResponse(f"/console/dlq?{counts}", status_code=303, headers=SECURITY_HEADERS)


# --- unknown messages -----------------------------------------------------------------------

@router.get("/unknown")
async def unknown_page(request: Request, principal: PrincipalDep, tenant: TenantQuery = "",
                       done: Annotated[str, Query(max_length=20)] = "", key: KeyQuery = "") -> Response:
    if not principal.operator:
        return not_found(principal, "page")
    scope, context = await page_context(request, principal, tenant)
    async with request.app.state.pool.acquire() as conn:
        rows = await queries.unknown_messages(conn, tenant_id=scope, limit=100)
    return page("unknown.html", title="Unknown messages", rows=rows, filter_action="/console/unknown",
                done=done if done in _OUTCOMES else "", key=key, **context)


async def _confirm_unknown(request: Request, principal: Principal, key: str, action: str, *,
                           error: str | None = None, reason: str = "", provider_status: str = "",
                           status: int = 200) -> HTMLResponse:
    async with request.app.state.pool.acquire() as conn:
        owner = await queries.message_tenant(conn, message_key=key) if key else None
        row = None if owner is None else await one_message(conn, tenant_id=owner, message_key=key)
    if row is None:
        return not_found(principal, "message")
    if error is None and action not in _OUTCOMES:
        error = "no such action"
    if error is None and row["state"] != "unknown":
        error = f"this message is {row['state']}: only an unknown message is resolved"
    return _confirm(principal, status=status, title=f"mark {key} {action}", action=action,
                    verb=f"mark {action}", what=f"message {key} of tenant #{owner}",
                    items=[f"to {row['phone']} by route {row['provider'] or '—'}, now {row['state']}",
                           f"why it is unknown: {row['reason'] or '—'}"],
                    hidden=[("key", key)], error=error, reason=reason,
                    fields=[("provider_status", "The provider's own status (optional, e.g. DELIVRD)",
                             provider_status, 200)],
                    post="/console/unknown/resolve", back="/console/unknown")


@router.get("/unknown/confirm")
async def confirm_unknown(request: Request, principal: PrincipalDep, key: KeyQuery = "",
                          action: Annotated[str, Query(max_length=20)] = "") -> Response:
    if not principal.operator:
        return not_found(principal, "page")
    return await _confirm_unknown(request, principal, key, action)


@router.post("/unknown/resolve")
async def resolve_unknown(request: Request, principal: PrincipalDep, csrf: CsrfForm = "",
                          action: ActionForm = "", reason: ReasonForm = "", key: KeyForm = "",
                          provider_status: Annotated[str, Form(max_length=400)] = "") -> Response:
    if not csrf_ok(principal, csrf):
        return refused(principal)
    if not principal.operator:
        return not_found(principal, "page")
    said = provider_status.strip()
    problem = (None if action in _OUTCOMES else "no such action") or reason_problem(reason) or (
        "the provider's status is at most 200 characters" if len(said) > 200 else pg_text_problem(said))
    if problem is not None:
        return await _confirm_unknown(request, principal, key, action, error=problem, reason=reason,
                                      provider_status=provider_status, status=422)
    state = request.app.state
    try:
        async with state.pool.acquire() as conn:
            row = await resolve_one(conn, key=key, outcome=_OUTCOMES[action], reason=reason.strip(),
                                    actor=principal.actor, provider_status=said or None)
    except NotFound:
        return not_found(principal, "message")
    except ConflictError as exc:
        return await _confirm_unknown(request, principal, key, action, error=str(exc), reason=reason,
                                      provider_status=provider_status, status=409)
    await state.bus.publish_many("delivery", delivery_records(dlr.receipt_events([row])))
    return RedirectResponse(f"/console/unknown?done={action}&key={quote(key, safe='')}",
                            status_code=303, headers=SECURITY_HEADERS)

"""Routes: templates, campaigns, previews, run control and stats (the marketer API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Request, status

from hexcast.core.cache import Keys
from hexcast.core.control import RunControl
from hexcast.core.db import Conn
from hexcast.core.errors import ConflictError, InvalidInput
from hexcast.core.idempotency import IdempotencyKey, idempotent, request_hash
from hexcast.core.scopes import MarketerTenant
from hexcast.core.settings import Settings
from hexcast.core.web import AfterId, IdPath, Limit, PoolDep, SettingsDep
from scheduler import repo
from scheduler.campaign_state import CampaignAction, change_state
from scheduler.forecast import QuietHours
from scheduler.lifecycle import snapshots
from scheduler.models import (
    CampaignCreate,
    CampaignPublic,
    CampaignStats,
    CampaignUpdate,
    PreviewPublic,
    PreviewRequest,
    RunPublic,
    TemplateCreate,
    TemplatePublic,
)
from scheduler.preview import build_preview
from scheduler.runs import campaign_capacity, create_run, zone_counts
from scheduler.service import Campaign, Fire, max_segments, upcoming_fire
from scheduler.views import campaign_public, run_public, run_stats, template_public
from sender import CapReservations, RouteControl, run_message_stats, tenant_max_segments

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["campaigns"])


def _control(request: Request) -> RunControl:
    settings = request.app.state.settings
    return RunControl(request.app.state.redis, Keys(settings.redis_prefix))


ControlDep = Annotated[RunControl, Depends(_control)]


def _reservations(request: Request) -> CapReservations:
    settings = request.app.state.settings
    return CapReservations(request.app.state.redis, Keys(settings.redis_prefix))


ReservationsDep = Annotated[CapReservations, Depends(_reservations)]


def _routes(request: Request) -> RouteControl:
    settings = request.app.state.settings
    return RouteControl(request.app.state.redis, Keys(settings.redis_prefix))


RoutesDep = Annotated[RouteControl, Depends(_routes)]


async def _check_segments(conn: Conn, tenant_id: int, text: str) -> None:
    """A body longer than the tenant allows (placeholders at a long value) is refused at
    creation, never discovered at send time."""
    limit = await tenant_max_segments(conn, tenant_id=tenant_id)
    _, segments = max_segments(text)
    if segments > limit:
        raise InvalidInput(f"body can be {segments} segments; this tenant allows {limit}",
                           field="body")


@router.post("/templates", status_code=status.HTTP_201_CREATED, response_model=TemplatePublic)
async def create_template(body: TemplateCreate, tenant: MarketerTenant, pool: PoolDep,
                          idempotency_key: IdempotencyKey = None) -> Any:
    async def create() -> TemplatePublic:
        async with pool.acquire() as conn:
            await _check_segments(conn, tenant.id, body.body)
            row = await repo.insert_template(conn, tenant_id=tenant.id, name=body.name, body=body.body)
        return template_public(row)

    return await idempotent(pool, tenant_id=tenant.id, key=idempotency_key, status=201,
                            digest=request_hash("/v1/templates", body), create=create)


@router.get("/templates", response_model=list[TemplatePublic])
async def list_templates(tenant: MarketerTenant, pool: PoolDep, after_id: AfterId = 0,
                         limit: Limit = 100) -> list[TemplatePublic]:
    async with pool.acquire() as conn:
        rows = await repo.list_templates(conn, tenant_id=tenant.id, after_id=after_id, limit=limit)
    return [template_public(r) for r in rows]


@router.get("/templates/{template_id}", response_model=TemplatePublic)
async def get_template(template_id: IdPath, tenant: MarketerTenant, pool: PoolDep) -> TemplatePublic:
    async with pool.acquire() as conn:
        return template_public(await repo.get_template(conn, tenant_id=tenant.id, template_id=template_id))


@router.delete("/templates/{template_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_template(template_id: IdPath, tenant: MarketerTenant, pool: PoolDep) -> None:
    """Campaigns made from it keep their own copy of the body."""
    async with pool.acquire() as conn:
        await repo.delete_template(conn, tenant_id=tenant.id, template_id=template_id)


_RUN_AT_GRACE = timedelta(minutes=5)
"""How far in the past a one-shot ``run_at`` may be (it then runs at once): a clock a little
behind, or "now" sent a moment ago. Older than that is a mistake, never a campaign to send."""


async def _insert_campaign(pool: asyncpg.Pool, tenant_id: int, body: CampaignCreate) -> CampaignPublic:
    if body.run_at is not None and body.last_start() < datetime.now(UTC) - _RUN_AT_GRACE:
        raise InvalidInput(f"run_at {body.run_at.isoformat()} has passed in {body.time_zone}"
                           if body.time_mode == "fixed" else
                           f"run_at {body.run_at.isoformat()} has passed in every time zone",
                           field="run_at")
    values = body.model_dump(exclude={"segment"}, mode="python")
    values["segment"] = body.segment.model_dump(mode="json", exclude_defaults=True)
    values["lane"] = body.lane.value
    async with pool.acquire() as conn, conn.transaction():
        if body.template_id is not None:
            template = await repo.get_template(conn, tenant_id=tenant_id, template_id=body.template_id)
            values["body"] = template["body"]
        await _check_segments(conn, tenant_id, str(values["body"]))
        return campaign_public(await repo.insert_campaign(conn, tenant_id=tenant_id, values=values))


@router.post("/campaigns", status_code=status.HTTP_201_CREATED, response_model=CampaignPublic)
async def create_campaign(body: CampaignCreate, tenant: MarketerTenant, pool: PoolDep,
                          idempotency_key: IdempotencyKey = None) -> Any:
    return await idempotent(pool, tenant_id=tenant.id, key=idempotency_key, status=201,
                            digest=request_hash("/v1/campaigns", body),
                            create=lambda: _insert_campaign(pool, tenant.id, body))


@router.get("/campaigns", response_model=list[CampaignPublic])
async def list_campaigns(tenant: MarketerTenant, pool: PoolDep, after_id: AfterId = 0,
                         limit: Limit = 100) -> list[CampaignPublic]:
    async with pool.acquire() as conn:
        rows = await repo.list_campaigns(conn, tenant_id=tenant.id, after_id=after_id, limit=limit)
    return [campaign_public(r) for r in rows]


@router.get("/campaigns/{campaign_id}", response_model=CampaignPublic)
async def get_campaign(campaign_id: IdPath, tenant: MarketerTenant, pool: PoolDep) -> CampaignPublic:
    async with pool.acquire() as conn:
        return campaign_public(await repo.get_campaign(conn, tenant_id=tenant.id, campaign_id=campaign_id))


@router.patch("/campaigns/{campaign_id}", response_model=CampaignPublic)
async def update_campaign(campaign_id: IdPath, body: CampaignUpdate, tenant: MarketerTenant,
                          pool: PoolDep) -> CampaignPublic:
    """Rename, re-rate or reword a campaign. A new max_rate applies to runs created afterwards,
    a new body to chunks released afterwards."""
    values = body.columns()
    async with pool.acquire() as conn:
        if "body" in values:
            await _check_segments(conn, tenant.id, str(values["body"]))
        if not values:
            row = await repo.get_campaign(conn, tenant_id=tenant.id, campaign_id=campaign_id)
        else:
            row = await repo.update_campaign(
                conn, tenant_id=tenant.id, campaign_id=campaign_id, values=values)
        return campaign_public(row)


def _next_fire(c: Campaign) -> Fire:
    fire = upcoming_fire(c, now=datetime.now(UTC))
    if fire is None:
        raise ConflictError("campaign has no further runs")
    return fire


@router.post("/campaigns/{campaign_id}/preview", response_model=PreviewPublic)
async def preview_campaign(campaign_id: IdPath, tenant: MarketerTenant, pool: PoolDep, settings: SettingsDep,
                           routes: RoutesDep, body: PreviewRequest | None = None) -> PreviewPublic:
    """Audience per zone, holdout, cost units and the wave forecast of the next run at what the
    configured routes give its lane (in segments), each route's part, a deadline verdict, the
    rate needed and, when it misses, the least change that meets; optionally with quiet hours
    (no sending then)."""
    quiet = body.quiet_hours if body is not None else None
    async with pool.acquire() as conn:
        c = Campaign.from_row(await repo.get_campaign(conn, tenant_id=tenant.id, campaign_id=campaign_id))
        zones = await zone_counts(conn, c, as_of=datetime.now(UTC), resolution=settings.h3_resolution)
    return build_preview(c, _next_fire(c), zones, capacity=await campaign_capacity(c, settings, routes),
                         quiet=QuietHours(quiet.start, quiet.end) if quiet is not None else None)


async def _change(pool: asyncpg.Pool, control: RunControl, reservations: CapReservations | None,
                  tenant_id: int, campaign_id: int, action: CampaignAction) -> CampaignPublic:
    row = await change_state(pool, control, reservations, campaign_id=campaign_id, action=action,
                             tenant_id=tenant_id)
    return campaign_public(row)


@router.post("/campaigns/{campaign_id}/pause", response_model=CampaignPublic)
async def pause_campaign(campaign_id: IdPath, tenant: MarketerTenant, pool: PoolDep,
                         control: ControlDep) -> CampaignPublic:
    """Stop releasing and sending its unfinished runs; no new runs start while paused."""
    return await _change(pool, control, None, tenant.id, campaign_id, CampaignAction.PAUSE)


@router.post("/campaigns/{campaign_id}/resume", response_model=CampaignPublic)
async def resume_campaign(campaign_id: IdPath, tenant: MarketerTenant, pool: PoolDep,
                          control: ControlDep) -> CampaignPublic:
    return await _change(pool, control, None, tenant.id, campaign_id, CampaignAction.RESUME)


@router.post("/campaigns/{campaign_id}/cancel", response_model=CampaignPublic)
async def cancel_campaign(campaign_id: IdPath, tenant: MarketerTenant, pool: PoolDep,
                          control: ControlDep, reservations: ReservationsDep) -> CampaignPublic:
    """Cancel its unfinished runs and every future one; their cap reservations are released."""
    return await _change(pool, control, reservations, tenant.id, campaign_id, CampaignAction.CANCEL)


@router.post("/campaigns/{campaign_id}/run-now", status_code=status.HTTP_201_CREATED,
             response_model=RunPublic)
async def run_now(campaign_id: IdPath, tenant: MarketerTenant, pool: PoolDep, settings: SettingsDep,
                  control: ControlDep, routes: RoutesDep, idempotency_key: IdempotencyKey = None) -> Any:
    """Start a run now: every wave fires immediately."""
    async def create() -> RunPublic:
        async with pool.acquire() as conn:
            row = await repo.get_campaign(conn, tenant_id=tenant.id, campaign_id=campaign_id)
            if row["state"] != "active":
                raise ConflictError(f"campaign {campaign_id} is {row['state']}")
            run_id = await start_now(conn, control, routes, Campaign.from_row(row), settings)
            waves = await repo.waves_of(conn, run_ids=[run_id])
            return run_public(await repo.get_run(conn, run_id=run_id), waves, row)

    return await idempotent(pool, tenant_id=tenant.id, key=idempotency_key, status=201,
                            digest=request_hash(f"/v1/campaigns/{campaign_id}/run-now", None), create=create)


async def start_now(conn: Conn, control: RunControl, routes: RouteControl, c: Campaign,
                    settings: Settings) -> int:
    """Create a run of ``c`` whose waves all fire now."""
    now = datetime.now(UTC)
    run_id = await create_run(conn, control, c, Fire(now.replace(tzinfo=None), now), settings,
                              routes=routes, now_run=True)
    if run_id is None:
        raise ConflictError("a run was started at this very instant; retry")
    return run_id


@router.get("/campaigns/{campaign_id}/runs", response_model=list[RunPublic])
async def list_runs(campaign_id: IdPath, tenant: MarketerTenant, pool: PoolDep,
                    settings: SettingsDep) -> list[RunPublic]:
    """The runs with their waves; an unfinished run with its measured rate and, per zone, what
    remains and when it is projected to finish (at risk: after its deadline)."""
    async with pool.acquire() as conn:
        campaign = await repo.get_campaign(conn, tenant_id=tenant.id, campaign_id=campaign_id)
        runs = await repo.list_runs(conn, campaign_id=campaign_id)
        waves = await repo.waves_of(conn, run_ids=[r["id"] for r in runs])
        live = {p.run["id"]: p for p in await snapshots(
            conn, quiet_hours_on=settings.sender_quiet_hours,
            run_ids=[r["id"] for r in runs if r["finished_at"] is None])}
    return [run_public(r, [w for w in waves if w["run_id"] == r["id"]], campaign, live.get(r["id"]))
            for r in runs]


@router.get("/campaigns/{campaign_id}/stats", response_model=CampaignStats)
async def campaign_stats(campaign_id: IdPath, tenant: MarketerTenant, pool: PoolDep) -> CampaignStats:
    """Per run: released, held out, sent, delivered, failed, deferred, suppressed by reason."""
    async with pool.acquire() as conn:
        await repo.get_campaign(conn, tenant_id=tenant.id, campaign_id=campaign_id)
        runs = await repo.list_runs(conn, campaign_id=campaign_id)
        ids = [r["id"] for r in runs]
        waves = await repo.waves_of(conn, run_ids=ids)
        messages = await run_message_stats(conn, tenant_id=tenant.id, run_ids=ids)
    return CampaignStats(campaign_id=campaign_id, runs=[
        run_stats(r, [w for w in waves if w["run_id"] == r["id"]], messages[r["id"]]) for r in runs
    ])

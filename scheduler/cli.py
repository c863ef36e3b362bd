"""Operator commands: ``hexcast scheduler`` and ``hexcast campaign run-now|status|pause|resume|cancel``."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from hexcast.core.cache import Keys, connect_redis
from hexcast.core.cli_audit import confirmed
from hexcast.core.control import RunControl
from hexcast.core.db import connect_pool
from hexcast.core.errors import HexcastError
from hexcast.core.ids import BIGINT_MAX
from hexcast.core.logging import configure_logging
from hexcast.core.metrics import serve_metrics
from hexcast.core.operator_log import Audited
from hexcast.core.settings import Settings, get_settings
from scheduler import repo
from scheduler.campaign_state import Audit, CampaignAction, change_state
from scheduler.lifecycle import RunSnapshot, snapshots
from scheduler.service import Campaign
from sender import CapReservations, RouteControl, run_message_stats

__all__ = ["campaign_app", "scheduler_command"]

campaign_app = typer.Typer(no_args_is_help=True, help="Campaign operations.")
console = Console()
CampaignId = Annotated[int, typer.Argument(help="Campaign id", min=1, max=BIGINT_MAX)]


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def scheduler_command() -> None:
    """Run a scheduler: due campaign runs → time-zone waves → chunks on send.bulk."""
    from scheduler.runner import run_scheduler

    settings = _settings()
    serve_metrics(settings, process="scheduler")
    asyncio.run(run_scheduler(settings))


async def _run_now(settings: Settings, campaign_id: int) -> int:
    from scheduler.api import start_now

    pool = await connect_pool(settings.database_url, max_size=2)
    redis = connect_redis(settings.redis_url)
    try:
        async with pool.acquire() as conn:
            row = await repo.get_campaign(conn, tenant_id=None, campaign_id=campaign_id)
            keys = Keys(settings.redis_prefix)
            return await start_now(conn, RunControl(redis, keys), RouteControl(redis, keys),
                                   Campaign.from_row(row), settings)
    finally:
        await redis.aclose()
        await pool.close()


async def _act(settings: Settings, campaign_id: int, action: CampaignAction, audited: Audited) -> str:
    pool = await connect_pool(settings.database_url, max_size=2)
    redis = connect_redis(settings.redis_url)
    try:
        keys = Keys(settings.redis_prefix)
        row = await change_state(pool, RunControl(redis, keys), CapReservations(redis, keys),
                                 campaign_id=campaign_id, action=action, tenant_id=None,
                                 audit=Audit(actor=audited.actor, reason=audited.reason))
        return str(row["state"])
    finally:
        await redis.aclose()
        await pool.close()


def _campaign_action(action: CampaignAction, campaign_id: int, reason: str, yes: bool) -> None:
    audited = confirmed(reason, f"{action.value} campaign {campaign_id}", yes=yes)
    try:
        state = asyncio.run(_act(_settings(), campaign_id, action, audited))
    except HexcastError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"campaign {campaign_id}: {state}")


Reason = Annotated[str, typer.Option(help="Why, for the operator audit log")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")]


@campaign_app.command("pause")
def pause(campaign_id: CampaignId, reason: Reason, yes: Yes = False) -> None:
    """Pause any tenant's campaign (audited)."""
    _campaign_action(CampaignAction.PAUSE, campaign_id, reason, yes)


@campaign_app.command("resume")
def resume(campaign_id: CampaignId, reason: Reason, yes: Yes = False) -> None:
    """Resume a paused campaign (audited)."""
    _campaign_action(CampaignAction.RESUME, campaign_id, reason, yes)


@campaign_app.command("cancel")
def cancel(campaign_id: CampaignId, reason: Reason, yes: Yes = False) -> None:
    """Cancel any tenant's campaign and its unfinished runs (audited)."""
    _campaign_action(CampaignAction.CANCEL, campaign_id, reason, yes)


@campaign_app.command("run-now")
def run_now(campaign_id: CampaignId) -> None:
    """Start a run of the campaign now (every wave fires immediately)."""
    run_id = asyncio.run(_run_now(_settings(), campaign_id))
    typer.echo(f"run {run_id} started")


async def _progress(settings: Settings, campaign_id: int) -> list[dict[str, Any]]:
    pool = await connect_pool(settings.database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            c = await repo.get_campaign(conn, tenant_id=None, campaign_id=campaign_id)
            runs = await repo.list_runs(conn, campaign_id=campaign_id)
            ids = [r["id"] for r in runs]
            waves = await repo.waves_of(conn, run_ids=ids)
            stats = await run_message_stats(conn, tenant_id=c["tenant_id"], run_ids=ids)
            live = {p.run["id"]: p for p in await snapshots(
                conn, quiet_hours_on=settings.sender_quiet_hours,
                run_ids=[r["id"] for r in runs if r["finished_at"] is None])}
    finally:
        await pool.close()
    out = []
    for r in runs:
        mine = [w for w in waves if w["run_id"] == r["id"]]
        out.append({"id": r["id"], "state": r["state"], "released": sum(w["released"] for w in mine),
                    "waves_done": sum(w["state"] == "done" for w in mine), "waves": len(mine),
                    "sent": stats[r["id"]].sent, "states": stats[r["id"]].states,
                    "done": r["finished_at"] is not None,
                    "zones": _zone_lines(live[r["id"]]) if r["id"] in live else []})
    return out


def _zone_lines(snap: RunSnapshot) -> list[tuple[str, bool, str]]:
    """(zone, nothing left, what remains and when it is projected to finish) per zone."""
    lines = []
    for z in snap.zones:
        finish = "-" if z.remaining == 0 else (
            f"{z.projected_finish_at:%Y-%m-%d %H:%M:%S}Z" if z.projected_finish_at else "never")
        deadline = f" deadline {z.deadline_at:%Y-%m-%d %H:%M:%S}Z" if z.deadline_at else ""
        risk = " AT RISK" if z.at_risk else ""
        lines.append((z.time_zone or snap.run["campaign_zone"], z.remaining == 0,
                      f"remaining {z.remaining} at {z.rate_per_s:.1f}/s finish {finish}{deadline}{risk}"))
    return lines


def _show(progress: Progress, tasks: dict[Any, TaskID], runs: list[dict[str, Any]]) -> None:
    for run in runs:
        total = max(run["released"], 1)
        info = (f"{run['state']} waves {run['waves_done']}/{run['waves']} released "
                f"{run['released']} sent {run['sent']} {run['states']}")
        if run["id"] not in tasks:
            tasks[run["id"]] = progress.add_task(f"run {run['id']}", total=total, info=info)
        progress.update(tasks[run["id"]], total=total, completed=run["sent"], info=info)
        for zone, done, text in run["zones"]:
            key = (run["id"], zone)
            if key not in tasks:
                tasks[key] = progress.add_task(f"  {zone}", total=1, info=text)
            progress.update(tasks[key], completed=int(done), info=text)


@campaign_app.command("status")
def status(
    campaign_id: CampaignId,
    watch: Annotated[float, typer.Option(
        help="Refresh every N seconds until every run is finished (or Ctrl-C); 0 = once")] = 0,
) -> None:
    """Runs of a campaign with released/sent progress bars; an unfinished run's zones with what
    remains, the measured rate and the projected finish (AT RISK: after the deadline)."""
    settings = _settings()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  console=console) as progress:
        tasks: dict[Any, TaskID] = {}
        try:
            while True:
                runs = asyncio.run(_progress(settings, campaign_id))
                _show(progress, tasks, runs)
                if not watch or all(r["done"] for r in runs):
                    return
                time.sleep(watch)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

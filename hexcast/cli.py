"""The ``hexcast`` command: every process and operator task starts here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer

from hexcast.chaos.cli import chaos_command, soak_command
from hexcast.core.cli_audit import confirmed
from hexcast.core.errors import HexcastError
from hexcast.core.logging import configure_logging
from hexcast.core.metrics import serve_metrics
from hexcast.core.settings import Settings, get_settings
from hexcast.keys_cli import key_app
from scheduler.cli import campaign_app, scheduler_command
from sender.cli import (
    cutover_app,
    deferred_app,
    dlq_app,
    parity_app,
    providers_app,
    unknown_app,
)
from sender.models import Lane
from sender.retention_cli import messages_app

__all__ = ["main"]

T = TypeVar("T")
app = typer.Typer(no_args_is_help=True, help="hexcast: geo-triggered SMS targeting and scheduling")
db_app = typer.Typer(no_args_is_help=True, help="Database tasks.")
tenant_app = typer.Typer(no_args_is_help=True, help="Tenants and API keys.")
catalog_app = typer.Typer(no_args_is_help=True, help="Catalog and profile topics.")
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
tenant_app.add_typer(key_app, name="key")
app.add_typer(catalog_app, name="catalog")
app.add_typer(campaign_app, name="campaign")
app.command("scheduler")(scheduler_command)
app.add_typer(dlq_app, name="dlq")
app.add_typer(deferred_app, name="deferred")
app.add_typer(providers_app, name="providers")
app.add_typer(cutover_app, name="send-mode")
app.add_typer(parity_app, name="parity")
app.add_typer(unknown_app, name="unknown")
app.command("chaos")(chaos_command)
app.command("soak")(soak_command)
app.add_typer(messages_app, name="messages")


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(factory())  # type: ignore[arg-type]


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (idempotent)."""
    from hexcast.ops import migrate

    applied = _run(lambda: migrate(_settings()))
    typer.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="Tenant (brand) name")],
    reason: Annotated[str, typer.Option(help="Why, for the operator audit log")] = "created from the CLI",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Create a tenant and print its admin API key (shown once), after asking (unless
    ``--yes``); written to the operator audit log (actor: cli:<user>)."""
    from hexcast.core.tenants import tenant_name
    from hexcast.ops import new_tenant

    name = tenant_name(name)
    audited = confirmed(reason, f"create tenant {name!r} and its first admin API key", yes=yes)
    tenant_id, key = _run(lambda: new_tenant(_settings(), name, actor=audited.actor,
                                             reason=audited.reason))
    typer.echo(f"tenant {tenant_id} {name}\napi key: {key}")


@app.command("topics")
def topics() -> None:
    """Create the topics on the broker (idempotent)."""
    from hexcast.core.topics import create_topics

    _run(lambda: create_topics(_settings()))
    typer.echo("topics ready")


@catalog_app.command("sync")
def catalog_sync() -> None:
    """Republish every store, promotion and profile from PostgreSQL to the compacted topics."""
    from hexcast.ops import sync_catalog

    counts = _run(lambda: sync_catalog(_settings()))
    typer.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


@app.command("api")
def api() -> None:
    """Run the HTTP API (ingestion, marketer API, webhooks)."""
    import uvicorn

    from hexcast.api import create_app

    settings = _settings()
    serve_metrics(settings, process="api")
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level="warning", access_log=False)


@app.command("matcher")
def matcher() -> None:
    """Run a matcher worker: visits → geo send requests."""
    from hexcast.core.faustapp import create_faust_app, run_worker
    from streams.agents import register_matcher

    settings = _settings()
    serve_metrics(settings, process="matcher")
    faust_app = create_faust_app(settings, role="matcher")
    register_matcher(faust_app, settings)
    run_worker(faust_app, loglevel="warning")


@app.command("archiver")
def archiver() -> None:
    """Run an archiver worker: visits → the PostgreSQL visit history."""
    from hexcast.core.faustapp import create_faust_app, run_worker
    from streams.archive import register_archiver

    settings = _settings()
    serve_metrics(settings, process="archiver")
    faust_app = create_faust_app(settings, role="archiver")
    register_archiver(faust_app, settings)
    run_worker(faust_app, loglevel="warning")


@app.command("sender")
def sender(lane: Annotated[Lane, typer.Option(help="Which lane this worker serves")] = Lane.GEO) -> None:
    """Run a sender worker for one lane."""
    from hexcast.core.faustapp import create_faust_app, run_worker
    from sender.agents import register_sender

    settings = _settings()
    serve_metrics(settings, process=f"sender-{lane.value}")
    faust_app = create_faust_app(settings, role=f"sender-{lane.value}")
    register_sender(faust_app, settings, lane=lane)
    run_worker(faust_app, loglevel="warning")


@app.command("webhooks")
def webhooks() -> None:
    """Run a webhooks worker: the outbox → signed requests to tenants' endpoints."""
    from sender.webhooks import run_webhooks

    settings = _settings()
    serve_metrics(settings, process="webhooks")
    asyncio.run(run_webhooks(settings))


@app.command("webhook-listen")
def webhook_listen(
    secret: Annotated[str, typer.Option(help="The endpoint's whsec_ secret")],
    port: Annotated[int, typer.Option(min=1, max=65535)] = 9009,
) -> None:
    """Receive webhooks on 127.0.0.1:PORT, check their signatures, print each event."""
    from sender.webhooks.listen import serve

    typer.echo(f"listening on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
    serve(port, secret)


@app.command("provider-sim")
def provider_sim(
    smpp_port: Annotated[int | None, typer.Option(
        min=0, max=65535, help="Also be an SMPP 3.4 SMSC on this port (0 = any free port)")] = None,
    smpp_system_id: Annotated[str, typer.Option(help="The system_id SMPP binds must use")] = "hexcast",
    smpp_password: Annotated[str, typer.Option(help="The password SMPP binds must use")] = "secret",
) -> None:
    """Run the SMS provider simulator (a real HTTP server; with --smpp-port an SMSC too)."""
    from providersim.server import SimConfig, run_sim

    s = _settings()
    serve_metrics(s, process="provider-sim")
    hook = "status" if s.sim_mode == "single" else "dlr"  # Twilio-like callbacks, or batches
    if s.sim_dialect != "generic":  # a provider's own callbacks, to its route's webhook
        hook = f"providers/{s.provider_name}"
    dlr_url = (s.sim_dlr_url or f"{s.api_public_url}/v1/webhooks/{hook}") if s.sim_receipts else None
    config = SimConfig(rate_per_s=s.sim_rate_per_s, dlr_url=dlr_url, dlr_delay_s=s.sim_dlr_delay_s,
                       dlr_token=s.dlr_webhook_token, token=s.provider_token, mode=s.sim_mode,
                       lookup=s.sim_lookup, retry_after_s=s.sim_retry_after_s,
                       ledger_path=s.sim_ledger_path, dialect=s.sim_dialect, account=s.sim_account,
                       signing_key=s.sim_signing_key, smpp_port=smpp_port, smpp_host=s.sim_host,
                       smpp_system_id=smpp_system_id, smpp_password=smpp_password)
    run_sim(config, s.sim_host, s.sim_port)


@app.command("demo-data")
def demo_data(
    recipients: Annotated[int, typer.Option(min=10, max=1_000_000, help="Recipients")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data)")] = 7,
) -> None:
    """Load the synthetic analytics dataset (replaces the demo tenant) for the notebooks."""
    from hexcast.ops import demo_data as load_demo
    from hexcast.synth import DEMO_TENANT, SynthParams

    summary = _run(lambda: load_demo(_settings(), SynthParams(recipients=recipients, seed=seed,
                                                              until=_today())))
    counts = ", ".join(f"{k}: {v}" for k, v in summary.counts.items())
    typer.echo(f"tenant {summary.tenant_id} {DEMO_TENANT}: {counts}\napi key: {summary.api_key}")


def _today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@app.command("up")
def up(
    visits: Annotated[int, typer.Option(help="Demo visits to replay")] = 300,
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 = until Ctrl-C")] = 0,
    quiet_hours: Annotated[bool, typer.Option(
        help="Keep recipients' quiet hours (the demo turns them off so it sends at any hour)")] = False,
    demo: Annotated[bool, typer.Option(
        "--demo/--no-demo",
        help="Seed a demo tenant and replay visits; --no-demo starts an empty stack")] = True,
) -> None:
    """Start the whole stack locally (with demo data unless --no-demo) and show what it sends."""
    from hexcast.up import run_stack

    run_stack(visits=visits, duration=duration, quiet_hours=quiet_hours, demo=demo)


@app.command("asyncapi")
def asyncapi() -> None:
    """Print the topics' record schemas as an AsyncAPI 3.0 document (docs/asyncapi.json)."""
    from hexcast.asyncapi import render

    typer.echo(render(), nl=False)


def main() -> None:
    try:
        app()
    except HexcastError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None

"""Operator commands of the sender: ``hexcast dlq list|show|replay``, ``hexcast deferred release``,
``hexcast providers check``, ``hexcast unknown list|resolve``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from hexcast.core.settings import get_settings

if TYPE_CHECKING:
    from sender.models import ProviderSpec

__all__ = [
    "code_table", "cutover_app", "deferred_app", "dlq_app", "parity_app", "providers_app",
    "unknown_app",
]

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters of the sender (send.dlq).")
deferred_app = typer.Typer(no_args_is_help=True, help="Messages deferred by quiet hours.")
providers_app = typer.Typer(no_args_is_help=True, help="Provider routes.")
parity_app = typer.Typer(no_args_is_help=True, help="A tenant's dry run against its legacy platform.")
cutover_app = typer.Typer(no_args_is_help=True,
                          help="Dry run and cutover per tenant (sends nothing in dry run).")


@providers_app.command("check")
def providers_check(
    probe: Annotated[bool, typer.Option(
        "--probe", help="Then call each route's account endpoint at once (sends nothing):"
        " ok or FAILED per route, exit 1 if any failed.")] = False,
) -> None:
    """Validate the provider routes (HEXCAST_PROVIDERS_FILE, else HEXCAST_SENDER_PROVIDERS):
    every field, every secret readable. Exits non-zero naming the route and field."""
    from hexcast.core.errors import ConfigError
    from sender.routing import provider_specs

    settings = get_settings()
    try:
        specs = provider_specs(settings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for spec in specs:
        lanes = ",".join(lane.value for lane in spec.lanes)
        typer.echo(f"{spec.name}: {spec.kind} at {spec.url}, lanes {lanes}, weight {spec.weight}")
    typer.echo(f"{len(specs)} route(s) valid")
    if probe and not asyncio.run(_probe_routes(specs, settings.provider_timeout_s)):
        raise typer.Exit(1)


async def _probe_routes(specs: list[ProviderSpec], timeout_s: float) -> bool:
    """Probe every route concurrently (a slow one holds up none of the others), print
    ``name: ok: <what it said>`` or ``name: FAILED: <why>`` for each in the file's order;
    whether all answered."""
    from hexcast.core.errors import ProviderError
    from sender.providers import probe_route

    async def one(spec: ProviderSpec) -> tuple[bool, str]:
        try:
            return True, await probe_route(spec, timeout_s=timeout_s)
        except ProviderError as exc:
            return False, str(exc).removeprefix(f"{spec.name}: ")

    outcomes = await asyncio.gather(*(one(spec) for spec in specs))
    for spec, (ok, said) in zip(specs, outcomes, strict=True):
        typer.echo(f"{spec.name}: {'ok' if ok else 'FAILED'}: {said}")
    return all(ok for ok, _ in outcomes)


@deferred_app.command("release")
def deferred_release() -> None:
    """Requeue every deferred message whose time has come, once."""
    from hexcast.core.bus import Bus
    from hexcast.core.db import connect_pool
    from sender.deferred import release_due

    settings = get_settings()

    async def run() -> int:
        pool = await connect_pool(settings.database_url, max_size=2)
        bus = Bus(settings)
        await bus.start()
        try:
            return await release_due(pool, bus, settings, now=datetime.now(UTC))
        finally:
            await bus.stop()
            await pool.close()

    typer.echo(f"released: {asyncio.run(run())}")


@dlq_app.command("list")
def dlq_list(limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50) -> None:
    """The dead letters, oldest first: offset, key, reason."""
    from sender.dlq import read_dead_letters

    for offset, letter in asyncio.run(read_dead_letters(get_settings(), limit=limit)):
        typer.echo(f"{offset}\t{letter.key}\t{letter.at.isoformat()}\t{letter.reason[:120]}")


@dlq_app.command("show")
def dlq_show(offset: Annotated[int, typer.Argument(min=0)]) -> None:
    """One dead letter in full, with its original payload."""
    from sender.dlq import read_dead_letters

    found = [d for o, d in asyncio.run(read_dead_letters(get_settings(), limit=offset + 1))
             if o == offset]
    if not found:
        raise typer.BadParameter(f"no dead letter at offset {offset}")
    typer.echo(found[0].model_dump_json(indent=2))


Reason = Annotated[str, typer.Option("--reason", min=1, help="Why (kept in the audit trail).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")]


def _audited(reason: str, question: str, yes: bool) -> tuple[str, str]:
    """(actor, reason) for the operator audit log once the operator said yes."""
    from hexcast.core.cli_audit import confirmed

    audited = confirmed(reason, question, yes=yes)
    return audited.actor, audited.reason


@dlq_app.command("replay")
def dlq_replay(
    reason: Reason,
    offset: Annotated[int | None, typer.Argument(
        min=0, help="One letter; when omitted, every letter not replayed yet")] = None,
    yes: Yes = False,
) -> None:
    """Send dead letters again: failed messages are requeued, and the sender re-checks consent,
    opt-out, quiet hours and dedupe before anything goes out. Audited per letter."""
    from hexcast.core.errors import InvalidInput
    from sender.dlq import Selection, replay

    what = "every dead letter not replayed yet" if offset is None else f"dead letter {offset}"
    actor, why = _audited(reason, f"replay {what}", yes)
    selection = Selection(offsets=() if offset is None else (offset,))
    try:
        done = asyncio.run(replay(get_settings(), selection=selection, actor=actor, reason=why))
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc), param_hint="OFFSET") from None
    for letter in done:
        if letter.skipped:
            typer.echo(f"{letter.offset}: not replayed: {letter.skipped}", err=True)
    typer.echo(f"replayed: {sum(d.messages for d in done)} messages")


def _route_action(action: str, name: str, reason: str, wait_s: float, yes: bool) -> None:
    from hexcast.core.cache import Keys, connect_redis
    from hexcast.core.db import connect_pool
    from hexcast.core.errors import ConfigError
    from sender.route_control import RouteAction, RouteControl, act
    from sender.routing import provider_specs

    settings = get_settings()
    try:
        names = {s.name for s in provider_specs(settings)}
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if name not in names:
        typer.echo(f"error: no provider route {name!r} (routes: {', '.join(sorted(names))})", err=True)
        raise typer.Exit(2)
    actor, reason = _audited(reason, f"{action} route {name}", yes)

    async def run() -> int:
        client = connect_redis(settings.redis_url)
        pool = await connect_pool(settings.database_url, max_size=1)
        control = RouteControl(client, Keys(settings.redis_prefix))
        try:
            async with pool.acquire() as conn:
                await act(control, conn, route=name, action=RouteAction(action), actor=actor,
                          reason=reason)
            deadline = time.monotonic() + wait_s
            left = await control.in_flight(name)
            while action == "drain" and left and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                left = await control.in_flight(name)
            return left
        finally:
            await pool.close()
            await client.aclose()

    left = asyncio.run(run())
    if action == "drain" and left:
        typer.echo(f"{name}: draining, {left} call(s) still in flight after {wait_s:g} s", err=True)
        raise typer.Exit(1)
    typer.echo(f"{name}: {RouteAction(action).state.value}")


@providers_app.command("drain")
def providers_drain(
    name: str, reason: Reason,
    wait_s: Annotated[float, typer.Option(min=0, help="How long to wait for calls in flight.")] = 60,
    yes: Yes = False,
) -> None:
    """Send nothing new to a route (every sender within about a second) and wait until the
    calls already made have finished."""
    _route_action("drain", name, reason, wait_s, yes)


@providers_app.command("disable")
def providers_disable(name: str, reason: Reason, yes: Yes = False) -> None:
    """Send nothing new to a route; calls already made finish on their own."""
    _route_action("disable", name, reason, 0, yes)


@providers_app.command("enable")
def providers_enable(name: str, reason: Reason, yes: Yes = False) -> None:
    """Give a drained or disabled route traffic again."""
    _route_action("enable", name, reason, 0, yes)


@providers_app.command("codes")
def providers_codes() -> None:
    """Print every provider's mapped statuses and error codes as the Markdown table kept in
    docs/PROVIDERS.md (a test keeps the two equal)."""
    for line in code_table():
        typer.echo(line)


def code_table() -> list[str]:
    """The rows of docs/PROVIDERS.md's table: kind, status word or error code, meaning."""
    from sender.providers import KINDS, adapter_module

    lines = ["| provider | status or error code | hexcast |", "|---|---|---|"]
    for kind in KINDS:
        table = adapter_module(kind).TABLE
        if not table.statuses and not table.errors:
            continue  # no delivery callbacks (the dry-run route)
        lines += [f"| {kind} | status `{word}` | {status.value} |"
                  for word, status in sorted(table.statuses.items())]
        lines += [f"| {kind} | error `{code}` | {cls.value} |"
                  for code, cls in sorted(table.errors.items())]
        lines.append(f"| {kind} | any other error | {table.default_error.value} |")
    return lines


@cutover_app.command("set")
def cutover_set(
    tenant: Annotated[str, typer.Argument(help="Tenant name")],
    mode: Annotated[str, typer.Argument(help="live or dry_run")],
    reason: Reason,
) -> None:
    """Put a tenant in dry run (every decision recorded, nothing sent) or live (the cutover).
    Reversible; audited; every sender applies it within about a second."""
    from hexcast.core.db import connect_pool
    from hexcast.core.errors import NotFound
    from hexcast.core.operator_log import cli_actor
    from hexcast.core.tenants import find_tenant
    from sender.cutover import set_send_mode

    if mode not in ("live", "dry_run"):
        typer.echo("error: mode must be live or dry_run", err=True)
        raise typer.Exit(2)
    actor = cli_actor()

    async def run() -> None:
        pool = await connect_pool(get_settings().database_url, max_size=1)
        try:
            async with pool.acquire() as conn:
                found = await find_tenant(conn, name=tenant)
                await set_send_mode(conn, tenant_id=found.id, mode=mode,  # type: ignore[arg-type]
                                    actor=actor, reason=reason)
        finally:
            await pool.close()

    try:
        asyncio.run(run())
    except NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{tenant}: {mode}")


@parity_app.command("report")
def parity_report(
    tenant: Annotated[str, typer.Option(help="Tenant name")],
    legacy: Annotated[Path, typer.Option(help="The legacy platform's send log (CSV: phone,time,status)")],
    margin_h: Annotated[float, typer.Option(min=0, help="Hours around the log's span to compare")] = 24,
) -> None:
    """Numbers both platforms sent to, the legacy one only (with hexcast's reason) and hexcast
    only, over the legacy log's time span."""
    from hexcast.core.db import connect_pool
    from hexcast.core.errors import NotFound
    from hexcast.core.tenants import find_tenant
    from sender import queries
    from sender.parity import Decision, compare, read_legacy

    try:
        rows = read_legacy(legacy.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        typer.echo(f"error: {legacy}: {exc}", err=True)
        raise typer.Exit(2) from None
    if not rows:
        typer.echo(f"error: {legacy}: no rows", err=True)
        raise typer.Exit(2)
    margin = timedelta(hours=margin_h)

    async def run() -> list[Decision]:
        pool = await connect_pool(get_settings().database_url, max_size=1)
        try:
            async with pool.acquire() as conn:
                found = await find_tenant(conn, name=tenant)
                got = await queries.decisions(conn, tenant_id=found.id,
                                              since=min(r.at for r in rows) - margin,
                                              until=max(r.at for r in rows) + margin)
        finally:
            await pool.close()
        return [Decision(*d) for d in got]

    try:
        decisions = asyncio.run(run())
    except NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for line in compare(rows, decisions).lines():
        typer.echo(line)


unknown_app = typer.Typer(no_args_is_help=True,
                          help="Messages a provider may or may not have taken (never resent).")


@unknown_app.command("list")
def unknown_list(
    route: Annotated[str | None, typer.Option(help="Only this route's")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
) -> None:
    """The oldest unknown messages: key, tenant, number, route, since, why."""
    from hexcast.core.db import connect_pool
    from sender.unknown import unknown_messages

    async def run() -> None:
        pool = await connect_pool(get_settings().database_url, max_size=1)
        try:
            async with pool.acquire() as conn:
                rows = await unknown_messages(conn, provider=route, limit=limit)
        finally:
            await pool.close()
        for r in rows:
            typer.echo(f"{r['message_key']}\t{r['tenant_id']}\t{r['phone']}\t{r['provider']}\t"
                       f"{r['updated_at']:%Y-%m-%dT%H:%M:%SZ}\t{r['reason'] or ''}")

    asyncio.run(run())


@unknown_app.command("resolve")
def unknown_resolve(
    keys: Annotated[list[str], typer.Argument(help="Message keys (see `hexcast unknown list`)")],
    outcome: Annotated[str, typer.Option("--as", help="delivered or failed")],
    reason: Annotated[str, typer.Option(help="Why: what the provider's records say")],
    provider_status: Annotated[str | None, typer.Option(
        help="The provider's own status, e.g. DELIVRD (kept in the audit log)")] = None,
    yes: Yes = False,
) -> None:
    """Settle unknown messages as the provider's records show; their tenants are told. Each
    message settled is in the operator audit log."""
    from hexcast.core.bus import Bus
    from hexcast.core.db import connect_pool
    from sender import dlr
    from sender.models import delivery_records
    from sender.unknown import Outcome, resolve

    if outcome not in ("delivered", "failed"):
        raise typer.BadParameter("--as delivered or --as failed", param_hint="--as")
    if not reason.strip():
        raise typer.BadParameter("say why", param_hint="--reason")
    actor, why = _audited(reason, f"resolve {len(keys)} message(s) as {outcome}", yes)
    settings = get_settings()

    async def run() -> int:
        pool = await connect_pool(settings.database_url, max_size=1)
        bus = Bus(settings)
        await bus.start()
        try:
            async with pool.acquire() as conn:
                changed = await resolve(conn, keys=keys, outcome=cast("Outcome", outcome),
                                        reason=why, actor=actor, provider_status=provider_status)
            await bus.publish_many("delivery", delivery_records(dlr.receipt_events(changed)))
            return len(changed)
        finally:
            await bus.stop()
            await pool.close()

    done = asyncio.run(run())
    typer.echo(f"resolved: {done} of {len(keys)} (the others were not unknown)")

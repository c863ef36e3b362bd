"""``hexcast chaos``: the workload under a seeded fault schedule, then the invariants."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from hexcast.core.logging import configure_logging
from hexcast.core.settings import get_settings

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

if TYPE_CHECKING:  # every hexcast process imports the CLI: the chaos machinery only when run
    from hexcast.chaos.runner import ChaosResult

__all__ = ["chaos_command", "chaos_report", "parse_duration", "soak_command"]

console = Console()


def chaos_command(
    recipients: Annotated[int, typer.Option(min=1, help="Campaign audience.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Replays the same fault schedule and workload.")] = 1,
    window: Annotated[float, typer.Option(min=10, help="Seconds of workload and faults.")] = 90.0,
    faults: Annotated[int | None, typer.Option(
        min=1, help="Random faults; default: each process kind killed once + Redis + PostgreSQL.")] = None,
    rebalance: Annotated[bool, typer.Option(
        help="Only 1 → 2 → 1 bulk senders and matchers.")] = False,
    max_rate: Annotated[float, typer.Option(min=1, help="The campaign's messages/s.")] = 250.0,
    visits_per_s: Annotated[float, typer.Option(min=0)] = 20.0,
    out: Annotated[Path | None, typer.Option(help="State and report directory.")] = None,
) -> None:
    """Run the chaos workload against a world of real processes started for it (own
    PostgreSQL, Redis and broker), fail (exit 1) on any broken invariant."""
    from hexcast.chaos.runner import ChaosConfig, run_chaos
    from hexcast.chaos.workload import Rates

    settings = get_settings()
    configure_logging("warning" if settings.log_level == "info" else settings.log_level)
    config = ChaosConfig(recipients=recipients, seed=seed, window_s=window, faults=faults,
                         rebalance=rebalance, max_rate=max_rate, rates=Rates(visits_per_s=visits_per_s))
    state = (out or Path(settings.state_dir) / "chaos" / f"seed-{seed}").resolve()
    console.print(f"chaos: {recipients:,} recipients, seed {seed}, {len(config.schedule())} faults,"
                  f" state in {state}")
    result = run_chaos(config, state, broker_url=settings.broker_url)
    report = state / "report.md"
    report.write_text(chaos_report(result))
    console.print(report.read_text(), markup=False, soft_wrap=True)
    if not (result.verdict.ok and result.settled and not result.dead):
        raise typer.Exit(1)


def chaos_report(result: ChaosResult) -> str:
    """The run as Markdown: configuration, faults with their moments, load, invariants."""
    c = result.config
    lines = [f"# Chaos run, seed {c.seed}", "",
             f"- {c.recipients:,} recipients, window {c.window_s:.0f} s, campaign max rate {c.max_rate:g}/s;"
             f" settled: {'yes' if result.settled else 'NO'} after {result.seconds:.0f} s",
             f"- campaign: {result.sent:,} accepted by the provider in {result.sending_s:.0f} s"
             f" ({result.sent_per_s:,.0f}/s)",
             f"- load accepted: {len(result.load.accepted_visits):,} visits, {result.load.otps} OTPs,"
             f" {result.load.transactional} transactional, {len(result.load.stops)} STOPs;"
             f" {result.load.retries} client retries",
             f"- processes that exited by themselves: {', '.join(result.dead) or 'none'}",
             "", "| at (s) | fault | process | took (s) |", "|---:|---|---|---:|"]
    lines += [f"| {d.at_s:.1f} | {d.fault.describe()} | {d.instance or '-'} | {d.took_s:.1f} |"
              for d in result.done]
    lines += ["", result.verdict.markdown(), "", "```json",
              json.dumps({"config": asdict(c), "run_id": result.run_id}, default=str), "```", ""]
    return "\n".join(lines)


def parse_duration(text: str) -> float:
    """``4h``, ``90m``, ``300s`` or ``300`` (seconds) → seconds; a clear error otherwise."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:])
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 4h, 90m, 300s)") from None
    if not 60 <= seconds <= 7 * 86400:
        raise typer.BadParameter(f"{text!r}: a soak lasts from 1 minute to 7 days")
    return seconds


def soak_command(
    duration: Annotated[str, typer.Option(help="How long: 4h, 90m, 300s.")] = "4h",
    recipients: Annotated[int, typer.Option(min=1, help="Audience of each campaign.")] = 20_000,
    sample_every: Annotated[float, typer.Option(min=5, help="Seconds between samples.")] = 60.0,
    campaign_every: Annotated[float, typer.Option(min=30, help="Seconds between campaigns.")] = 900.0,
    provider_fault_every: Annotated[float, typer.Option(
        min=10, help="Seconds between provider faults (slow, 5xx, 429, late receipts in turn).")] = 300.0,
    seed: Annotated[int, typer.Option(help="The workload's seed.")] = 1,
    out: Annotated[Path | None, typer.Option(help="Report directory (default docs/soak/<date>).")] = None,
) -> None:
    """Run the workload for hours on a world started for it, with provider faults and no
    kills, sampling processes, PostgreSQL, Redis and topics; write a Markdown + PNG report and
    fail (exit 1) on a leak, a broken invariant or a process that exited."""
    import asyncio

    from hexcast.chaos.runner import ChaosConfig, world_for
    from hexcast.chaos.soak import SoakConfig, soak_in

    seconds = parse_duration(duration)
    settings = get_settings()
    configure_logging("warning" if settings.log_level == "info" else settings.log_level)
    target = (out or Path("docs/soak") / datetime.now(UTC).strftime("%Y-%m-%d")).resolve()
    target.mkdir(parents=True, exist_ok=True)
    config = SoakConfig(duration_s=seconds, sample_every_s=sample_every, recipients=recipients,
                        campaign_every_s=campaign_every, provider_fault_every_s=provider_fault_every,
                        seed=seed)
    state = Path(settings.state_dir).resolve() / "soak"
    console.print(f"soak: {seconds / 3600:.2f} h, report in {target}")
    with world_for(ChaosConfig(), state, broker_url=settings.broker_url).started() as world:
        result = asyncio.run(soak_in(world, config, target))
    console.print(result.readme.read_text(), markup=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)

"""`hexcast up`: the whole stack on one machine, with demo data and a live view of sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import asyncpg
import httpx
from rich.console import Console

from hexcast.core.logging import configure_logging
from hexcast.core.settings import Settings, get_settings
from hexcast.core.topics import create_topics
from hexcast.devstack.broker import EmbeddedBroker
from hexcast.devstack.demo import DEMO_PREFIX, demo_visits, seed_demo
from hexcast.devstack.localinfra import (
    ThrowawayPostgres,
    ThrowawayRedis,
    ensure_database,
    postgres_reachable,
    redis_reachable,
)
from hexcast.devstack.monitoring import Receivers, running_monitoring
from hexcast.devstack.monitoring import missing as monitoring_missing
from hexcast.devstack.procs import ChildProcess, hexcast_process, wait_http
from hexcast.ops import migrate, new_tenant, sync_catalog
from sender import queries as sender_queries

__all__ = ["PROCESSES", "metrics_targets", "run_stack", "write_service_discovery"]

console = Console()
PROCESSES = {
    "provider-sim": ["provider-sim"],
    "api": ["api"],
    "matcher": ["matcher"],
    "archiver": ["archiver"],
    "sender-otp": ["sender", "--lane", "otp"],
    "sender-transactional": ["sender", "--lane", "transactional"],
    "sender-geo": ["sender", "--lane", "geo"],
    "sender-bulk": ["sender", "--lane", "bulk"],
    "scheduler": ["scheduler"],
    "webhooks": ["webhooks"],
}


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop


@contextlib.contextmanager
def _infrastructure(settings: Settings, state: Path) -> Iterator[Settings]:
    """Broker, PostgreSQL and Redis: use what answers, start throwaway ones for what does not;
    then Prometheus and Alertmanager when they are installed."""
    with contextlib.ExitStack() as stack:
        updates: dict[str, object] = {}
        if settings.broker_url is None:
            broker = stack.enter_context(EmbeddedBroker(log_path=state / "broker.log"))
            updates["broker_url"] = broker.url
            console.print(f"[green]broker[/] embedded tansu at {broker.url}")
        if not asyncio.run(postgres_reachable(settings.database_url.rsplit("/", 1)[0] + "/postgres")):
            pg = stack.enter_context(ThrowawayPostgres(state))
            updates["database_url"] = pg.dsn
            console.print(f"[green]postgres[/] throwaway server at {pg.dsn}")
        else:
            asyncio.run(ensure_database(settings.database_url))
        if not asyncio.run(redis_reachable(settings.redis_url)):
            rd = ThrowawayRedis(log_path=state / "redis.log")
            stack.callback(rd.stop)
            updates["redis_url"] = rd.start()
            console.print(f"[green]redis[/] throwaway server at {updates['redis_url']}")
        prometheus_url = _monitoring(settings, state, stack)
        if prometheus_url is not None and settings.prometheus_url is None:
            updates["prometheus_url"] = prometheus_url  # the console's rates and percentiles
        yield settings.model_copy(update=updates)


def _monitoring(settings: Settings, state: Path, stack: contextlib.ExitStack) -> str | None:
    """Prometheus and Alertmanager from the installed binaries, configured from deploy/:
    scraping what ``write_service_discovery`` lists, alerting into this api (and Slack, if
    ``slack_webhook_url`` is set). Returns Prometheus's URL; None (with a warning) without
    the binaries or deploy/."""
    why = monitoring_missing()
    if why is not None or settings.operator_token is None:
        console.print(f"[yellow]monitoring[/] Prometheus and Alertmanager not started: {why}")
        return None
    receivers = Receivers(api_url=settings.api_public_url, operator_token=settings.operator_token,
                          slack_webhook_url=settings.slack_webhook_url)
    running = stack.enter_context(running_monitoring(
        state, targets_file=state / "prometheus" / "targets.json", receivers=receivers,
        prometheus_port=settings.prometheus_port, alertmanager_port=settings.alertmanager_port))
    slack = "hexcast and Slack" if settings.slack_webhook_url else "hexcast"
    console.print(f"[green]prometheus[/] {running.prometheus_url}  [green]alertmanager[/] "
                  f"{running.alertmanager_url} (alerts to {slack})")
    return running.prometheus_url


async def _prepare(settings: Settings) -> None:
    """Migrate, create topics, republish the catalog."""
    applied = await migrate(settings)
    console.print(f"[green]migrations[/] {', '.join(applied) or 'up to date'}")
    await create_topics(settings)
    counts = await sync_catalog(settings)
    console.print(f"[green]catalog[/] republished {counts}")


async def _demo_tenant(settings: Settings) -> tuple[int, str]:
    """Drop old demo tenants (and their catalog), then a new demo tenant: (id, API key)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("DELETE FROM tenants WHERE name LIKE $1", DEMO_PREFIX + "%")
    finally:
        await conn.close()
    return await new_tenant(settings, f"{DEMO_PREFIX}{int(time.time())}", actor="hexcast up",
                            reason="demo data")


def _replay(api: httpx.Client, visits: int, recipients: int) -> None:
    events = demo_visits(visits, recipients)
    for start in range(0, len(events), 100):
        response = api.post("/v1/visits", json={"events": events[start : start + 100]})
        response.raise_for_status()
    console.print(f"[green]visits[/] replayed {len(events)} demo visit events")


async def _watch(settings: Settings, tenant_id: int, until: float) -> None:
    conn = await asyncpg.connect(settings.database_url)
    last_id, shown = 0, 0
    try:
        while time.monotonic() < until:
            for row in await sender_queries.delivered_since(conn, tenant_id=tenant_id, after_id=last_id):
                last_id = row["id"]
                shown += 1
                console.print(f"[bold green]✓ delivered[/] {row['phone']}  “{row['body']}”")
            if shown and shown % 25 == 0:
                counts = await sender_queries.state_counts(conn, tenant_id=tenant_id)
                console.print(f"[dim]messages by state: {counts}[/]")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def metrics_targets(live: Settings) -> dict[str, int]:
    """Each process's ``/metrics`` port: ``metrics_base_port`` onwards, in ``PROCESSES`` order."""
    return {name: live.metrics_base_port + i for i, name in enumerate(PROCESSES)}


def write_service_discovery(path: Path, host: str, ports: dict[str, int]) -> None:
    """A Prometheus file-based service discovery file: one target group per process, labelled
    ``process`` (rewritten atomically: Prometheus re-reads it when it changes)."""
    groups = [{"targets": [f"{host}:{port}"], "labels": {"process": name, "job": "hexcast"}}
              for name, port in ports.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(groups, indent=2) + "\n")
    temporary.replace(path)


def _start_children(live: Settings, state: Path, procs: contextlib.ExitStack) -> list[ChildProcess]:
    children = []
    ports = metrics_targets(live)
    write_service_discovery(state / "prometheus" / "targets.json", live.metrics_host, ports)
    for name, args in PROCESSES.items():
        env = {**live.to_env(), "HEXCAST_METRICS_PORT": str(ports[name])}
        child = hexcast_process(name, args, env=env, log_dir=state / "logs")
        child.spawn()
        procs.callback(child.terminate, 10.0)  # stopped before the infrastructure, in reverse
        children.append(child)
    wait_http(f"{live.provider_url}/health", child=children[0])
    wait_http(f"{live.api_public_url}/health", child=children[1])
    return children


def run_stack(*, visits: int, duration: float, quiet_hours: bool, demo: bool = True) -> None:
    """Start everything; with ``demo``, seed, replay and show deliveries. Ctrl-C (or
    ``duration``) stops it."""
    configured = get_settings()
    settings = configured.model_copy(update={
        "sender_quiet_hours": quiet_hours,
        # local endpoints (a receiver on this machine) are fine here, unless set otherwise
        "webhook_allow_private_urls": configured.webhook_allow_private_urls
        or "webhook_allow_private_urls" not in configured.model_fields_set,
        "operator_token": configured.operator_token or secrets.token_urlsafe(32),  # /metrics
    })
    if demo and not quiet_hours:
        console.print("[yellow]demo: quiet hours are off so messages send at any hour "
                      "(--quiet-hours keeps them)[/]")
    configure_logging("warning" if settings.log_level == "info" else settings.log_level)
    state = Path(settings.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        with _infrastructure(settings, state) as live, contextlib.ExitStack() as procs:
            asyncio.run(_prepare(live))
            _start_children(live, state, procs)
            console.print(f"[green]api[/] {live.api_public_url} (OpenAPI docs: {live.api_public_url}/docs)")
            console.print(f"[green]operator token[/] {live.operator_token} (Authorization:"
                          f" Bearer … for {live.api_public_url}/v1/admin/…)", soft_wrap=True)
            console.print(f"[bold green]console[/] {live.api_public_url}/console (sign in with that"
                          " token, or with a tenant's admin API key)", soft_wrap=True)
            until = time.monotonic() + (duration if duration > 0 else float("inf"))
            try:
                if demo:
                    _run_demo(live, visits, until)
                else:
                    _explain_empty(live)
                    _wait(until)
            except (KeyboardInterrupt, _Stop):
                console.print("\nstopping…")
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
    except (KeyboardInterrupt, _Stop):
        console.print("\nstopped during start-up")
    console.print(f"stopped. logs in {state / 'logs'}")


def _run_demo(live: Settings, visits: int, until: float) -> None:
    tenant_id, key = asyncio.run(_demo_tenant(live))
    console.print(f"[green]demo API key[/] {key}", soft_wrap=True)
    with httpx.Client(base_url=live.api_public_url, headers={"X-API-Key": key}, timeout=30) as api:
        seeded = seed_demo(api)
        console.print(f"[green]demo[/] seeded {seeded}")
        _replay(api, visits, seeded["recipients"])
    console.print("[bold]watching deliveries (Ctrl-C to stop)…[/]")
    asyncio.run(_watch(live, tenant_id, until))


def _explain_empty(live: Settings) -> None:
    """What a stack without demo data needs next: a tenant and its key."""
    env = " ".join(f"{k}={v}" for k, v in live.to_env().items()
                   if k in ("HEXCAST_DATABASE_URL", "HEXCAST_BROKER_URL", "HEXCAST_REDIS_URL"))
    console.print("[bold]no demo data.[/] Create a tenant (prints its API key, sent as X-API-Key):")
    console.print(f"  {env} hexcast tenant create NAME", soft_wrap=True)
    console.print("running (Ctrl-C to stop)…")


def _wait(until: float) -> None:
    while time.monotonic() < until:
        time.sleep(min(0.5, max(0.0, until - time.monotonic())))

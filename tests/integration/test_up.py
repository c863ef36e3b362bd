"""`hexcast up`: with its demo (what `make run` shows: the demo campaign running in the console,
its progress moving, deliveries), and `--no-demo`, a stack with no demo data that says how to
create a tenant."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from hexcast.core.kafka import delete_topics
from hexcast.core.topics import topic_specs
from hexcast.devstack.demo import DEMO_PREFIX
from hexcast.devstack.procs import free_port, hexcast_process, run_sync, wait_http
from hexcast.testing import console_session, make_settings
from hexcast.testing.scrape import scrape
from hexcast.testing.waiting import eventually
from hexcast.up import PROCESSES, metrics_targets


async def _demo_tenants(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM tenants WHERE name LIKE $1",
                                       DEMO_PREFIX + "%"))
    finally:
        await conn.close()


async def _drop_tenant(dsn: str, name: str) -> None:
    """Delete the tenants named ``name`` (a LIKE pattern) and everything of theirs."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM tenants WHERE name LIKE $1", name)
    finally:
        await conn.close()


def _every_process_scraped(prometheus_url: str) -> bool | None:
    """Whether the Prometheus `hexcast up` started scrapes every process it started, healthy."""
    targets = httpx.get(f"{prometheus_url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    health = {t["labels"].get("process"): t["health"] for t in targets if t["labels"].get("job") == "hexcast"}
    return set(health) == set(PROCESSES) and set(health.values()) == {"up"} or None


def test_up_without_demo_serves_an_empty_stack(broker_url: str, database_url: str,
                                               tmp_path: Path) -> None:
    api_port, sim_port = free_port(), free_port()
    settings = make_settings(
        broker_url, database_url, api_port=api_port, sim_port=sim_port,
        api_public_url=f"http://127.0.0.1:{api_port}", provider_url=f"http://127.0.0.1:{sim_port}",
        operator_token=None,  # up generates one
    )
    env = settings.to_env()
    demo_before = run_sync(lambda: _demo_tenants(database_url))
    up = hexcast_process("up", ["up", "--no-demo", "--duration", "120"], env=env, log_dir=tmp_path)
    up.spawn()
    name = f"up-check-{api_port}"
    try:
        wait_http(f"{settings.api_public_url}/health", child=up, timeout=90)
        out = subprocess.run([sys.executable, "-m", "hexcast", "tenant", "create", name, "--yes"],
                             env={**up.env, **env}, capture_output=True, text=True, check=True).stdout
        key = re.search(r"api key: (\S+)", out)
        assert key, out
        with httpx.Client(base_url=settings.api_public_url, headers={"X-API-Key": key.group(1)}) as api:
            created = api.post("/v1/stores", json={
                "name": "Corner", "lat": 41.88, "lng": -87.62, "time_zone": "America/Chicago",
                "geofence": {"type": "circle", "radius_m": 80}})
            assert created.status_code == 201, created.text
            assert [s["name"] for s in api.get("/v1/stores").json()] == ["Corner"]
        log = up.tail(20_000)
        assert "no demo data" in log
        assert "hexcast tenant create NAME" in log
        assert "demo API key" not in log
        token = re.search(r"operator token (\S+)", log)
        assert token, log
        audit = httpx.get(f"{settings.api_public_url}/v1/admin/audit",
                          headers={"Authorization": f"Bearer {token.group(1)}"})
        assert audit.status_code == 200, audit.text
        api_metrics = f"http://{settings.metrics_host}:{metrics_targets(settings)['api']}/metrics"
        assert scrape([api_metrics]).value("hexcast_process_info", process="api") == 1
        console = re.search(r"console (\S+/console) ", log)
        assert console, log
        assert "Sign in" in httpx.get(console.group(1), follow_redirects=True).text
        prometheus = re.search(r"prometheus (http\S+)", log)
        assert prometheus, log
        eventually(lambda: _every_process_scraped(prometheus.group(1)), timeout=90)
        assert run_sync(lambda: _demo_tenants(database_url)) == demo_before
    finally:
        up.terminate(grace_s=30)
        run_sync(lambda: _drop_tenant(database_url, name))
        run_sync(lambda: delete_topics(settings.bootstrap_servers, topic_specs(settings)))



def _progress(html: str, campaign_id: int) -> tuple[int, int] | None:
    """The running campaign's (settled, total) in the overview fragment, or None if not shown."""
    row = re.search(rf'data-campaign="{campaign_id}".*?<progress[^>]*value="(\d+)" max="(\d+)"',
                    html, re.S)
    return (int(row.group(1)), int(row.group(2))) if row else None


def _after(log: str, line: str) -> str | None:
    return log if line in log else None


def test_make_run_shows_the_demo_campaign_running_in_the_console(
        broker_url: str, database_url: str, tmp_path: Path) -> None:
    """What `make run` opens: the console URL printed, and signed in with the printed operator
    token, the demo tenant's campaign running with its progress moving, geo offers and campaign
    messages delivered."""
    api_port, sim_port = free_port(), free_port()
    settings = make_settings(
        broker_url, database_url, api_port=api_port, sim_port=sim_port,
        api_public_url=f"http://127.0.0.1:{api_port}", provider_url=f"http://127.0.0.1:{sim_port}",
        operator_token=None)
    up = hexcast_process("up", ["up", "--visits", "200", "--duration", "150"],
                         env=settings.to_env(), log_dir=tmp_path)
    up.spawn()
    try:
        wait_http(f"{settings.api_public_url}/health", child=up, timeout=90)
        log = eventually(lambda: _after(up.tail(20_000), "watching deliveries"), timeout=120)
        seeded = re.search(r"'campaign': (\d+)", log)
        token = re.search(r"operator token (\S+)", log)
        assert seeded, log
        assert token, log
        assert f"{settings.api_public_url}/console" in log, log
        campaign_id = int(seeded.group(1))
        with console_session(settings.api_public_url, token.group(1)) as (client, _):
            def shown() -> tuple[int, int] | None:
                return _progress(client.get("/console/fragments/overview").text, campaign_id)
            first = eventually(shown, timeout=60)
            assert "Winter sale (demo)" in client.get("/console/fragments/overview").text
            assert first[1] > 200  # every consenting demo recipient
            moved = eventually(lambda: (p := shown()) is not None and p[0] > first[0] and p or None,
                               timeout=60)
            assert moved[1] == first[1]
        eventually(lambda: up.tail(20_000).count("✓ delivered") > 3, timeout=60)
    finally:
        up.terminate(grace_s=30)
        run_sync(lambda: _drop_tenant(database_url, DEMO_PREFIX + "%"))
        run_sync(lambda: delete_topics(settings.bootstrap_servers, topic_specs(settings)))

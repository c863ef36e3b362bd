"""The console in a real browser (Playwright driving Debian's chromium) against a real stack:
api, scheduler, a bulk sender and two provider-sims as routes (``sim-a``, the primary, speaking
Twilio's API, and ``sim-b``, the generic one), campaigns paced at a few messages a second so
their progress can be watched.

- The overview shows a running campaign whose progress bar advances without a reload.
- Pausing from the campaign page (confirmed, with a reason) pauses the run in PostgreSQL and
  the providers' ledgers stop growing; resuming lets it finish, every recipient once.
- Draining a route while a campaign sends changes its badge, and what is sent afterwards goes
  to the other route.
- Searching a phone shows the message's history with the provider's raw status.
- A tenant's session cannot see, search or act on another tenant's campaign, on the page and
  by direct requests (a forged form without, or with a wrong, CSRF token: 403; with its own
  token on another's campaign: 404).

A Prometheus scrapes the processes every second, so the console's rates and latencies show.
Each test saves a screenshot in its ``tmp_path``; with ``HEXCAST_UPDATE_SCREENSHOT=1`` the
first writes ``docs/console-overview.png`` (1366x768).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from hexcast.devstack.monitoring import Prometheus
from hexcast.devstack.procs import ChildProcess, free_port, hexcast_process, wait_http
from hexcast.testing import (
    OPERATOR_TOKEN,
    Stack,
    TenantRef,
    eventually,
    fetch_rows,
    make_settings,
    make_tenant,
    running_stack,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")
PHONES = "+1503555"  # this file's numbers: +1503555NNNN
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROCESSES = {"api": ["api"], "sender-bulk": ["sender", "--lane", "bulk"], "scheduler": ["scheduler"]}
ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TWILIO = {"kind": "twilio", "token": "sim-token", "account": ACCOUNT, "sender_id": "+13125550100"}
"""sim-a, the primary, speaks Twilio: its signed callbacks carry the provider's raw status."""
SIM_TWILIO = {"sim_dialect": "twilio", "sim_account": ACCOUNT, "provider_name": "sim-a"}


def _db(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a loop of its own thread (the sync Playwright API holds this one's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass(frozen=True)
class World:
    stack: Stack
    sims: dict[str, str]  # route name -> the simulator's base URL

    @property
    def dsn(self) -> str:
        return self.stack.settings.database_url

    def ledger(self, route: str, prefix: str) -> list[str]:
        """Numbers starting with ``prefix`` that ``route``'s simulator accepted, once each."""
        items = httpx.get(f"{self.sims[route]}/ledger", params={"limit": 10000}, timeout=10).json()["items"]
        return [i["to"] for i in items if i["to"].startswith(prefix)]


@pytest.fixture(scope="module")
def world(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ports, prometheus_port = {"sim-a": free_port(), "sim-b": free_port()}, free_port()
    routes = [{**TWILIO, "name": "sim-a", "url": f"http://127.0.0.1:{ports['sim-a']}", "weight": 1000},
              {"name": "sim-b", "url": f"http://127.0.0.1:{ports['sim-b']}", "token": "sim-token",
               "weight": 1}]
    settings = make_settings(
        broker_url, database_url, sender_providers=json.dumps(routes), sender_bulk_share=1.0,
        provider_rate_per_s=20.0, provider_burst=20.0,
        scheduler_poll_s=0.5, scheduler_chunk_size=5, campaign_receipt_wait_s=10.0,
        sender_cap_per_day=50, sender_cap_per_24h=50,
        prometheus_url=f"http://127.0.0.1:{prometheus_port}")
    log_dir = tmp_path_factory.mktemp("console-logs")
    with running_stack(settings, log_dir, PROCESSES) as stack:
        sims: list[ChildProcess] = []
        try:
            for name, port in ports.items():
                dialect = SIM_TWILIO if name == "sim-a" else {}
                env = stack.settings.model_copy(update={"sim_port": port, **dialect}).to_env()
                sims.append(hexcast_process(name, ["provider-sim"], env=env, log_dir=log_dir))
                sims[-1].spawn()
                wait_http(f"http://127.0.0.1:{port}/health", child=sims[-1])
            with Prometheus(log_dir / "prometheus", _scraping(stack), port=prometheus_port):
                yield World(stack, {n: f"http://127.0.0.1:{p}" for n, p in ports.items()})
        finally:
            for child in sims:
                child.terminate()


def _scraping(stack: Stack) -> dict[str, Any]:
    """A Prometheus configuration scraping every process of ``stack`` each second."""
    targets = [{"targets": [url.split("/")[2]], "labels": {"process": name}}
               for name, url in stack.metrics_urls.items()]
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "hexcast", "static_configs": targets}]}


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@contextmanager
def _console(browser: Browser, world: World, credential: str) -> Iterator[Page]:
    """A page signed in to the console with ``credential``, at 1366x768."""
    context = browser.new_context(viewport={"width": 1366, "height": 768},
                                  base_url=world.stack.api_url)
    try:
        page = context.new_page()
        page.goto("/console")
        expect(page).to_have_url(re.compile(r"/console/login$"))
        page.fill("#credential", credential)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/console$"))
        yield page
    finally:
        context.close()


async def _recipients(dsn: str, prefix: str, first: int, n: int) -> TenantRef:
    """A tenant with ``n`` consenting recipients numbered from ``first``."""
    conn = await asyncpg.connect(dsn)
    try:
        tenant = await make_tenant(conn, prefix=prefix)
        await conn.copy_records_to_table(
            "recipients", columns=["tenant_id", "user_id", "phone", "time_zone", "consent_at"],
            records=[(tenant.id, f"u{i}", f"{PHONES}{i:04d}", "UTC", datetime(2026, 1, 1, tzinfo=UTC))
                     for i in range(first, first + n)])
        return tenant
    finally:
        await conn.close()


def _campaign(world: World, tenant: TenantRef, name: str, *, rate: float, now: bool = True,
              deadline_s: float | None = None) -> int:
    """A one-shot campaign to every recipient of ``tenant`` at ``rate`` messages/s, starting
    now (else in a day), with a deadline ``deadline_s`` after the start if given."""
    start = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    run_at = start if now else start + timedelta(days=1)
    deadline = {} if deadline_s is None else {
        "deadline": (run_at + timedelta(seconds=deadline_s)).isoformat(), "on_deadline": "send_late"}
    answer = httpx.post(f"{world.stack.api_url}/v1/campaigns", headers={"X-API-Key": tenant.api_key},
                        timeout=30, json={"name": name, "body": "Spring sale: 20% off today",
                                          "segment": {"everyone": True}, "run_at": run_at.isoformat(),
                                          "time_zone": "UTC", "max_rate": rate, **deadline})
    assert answer.status_code == 201, answer.text
    campaign: int = answer.json()["id"]
    return campaign


def _run(world: World, campaign_id: int) -> Any:
    rows = _db(fetch_rows(world.dsn, "SELECT id, state, finished_at FROM campaign_runs"
                          " WHERE campaign_id = $1", campaign_id))
    return rows[0] if rows else None


def _finished(world: World, campaign_id: int) -> Any:
    run = _run(world, campaign_id)
    return run if run is not None and run["finished_at"] is not None else None


def _confirm(page: Page, action: str, reason: str) -> None:
    """Click an action, give the reason on its confirmation page, confirm."""
    page.click(f"#action-{action}")
    expect(page.locator("h1")).to_have_text(f"Confirm: {action}")
    page.fill("#reason", reason)
    page.click("#confirm")
    page.wait_for_url(re.compile(rf"\?done={action}$"))


def _number(text: str) -> float:
    """A count as the console prints it (``1,234``), 0 for a dash."""
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return 0.0


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_the_overview_shows_a_campaign_whose_progress_advances_without_a_reload(
    world: World, browser: Browser, tmp_path: Path,
) -> None:
    tenant = _db(_recipients(world.dsn, "console-progress", 0, 20))
    campaign = _campaign(world, tenant, "Spring sale", rate=3.0)
    with _console(browser, world, OPERATOR_TOKEN) as page:
        bar = page.locator(f'tr[data-campaign="{campaign}"] progress')
        expect(bar).to_be_visible(timeout=30_000)  # the run appears with a fragment swap
        page.evaluate("window.__sameDocument = true")
        first = float(bar.get_attribute("value") or 0)
        eventually(lambda: float(bar.get_attribute("value") or 0) > first or None, timeout=30)
        later = float(bar.get_attribute("value") or 0)
        assert 0 < later <= float(bar.get_attribute("max") or 0) == 20
        assert page.evaluate("window.__sameDocument") is True  # no reload: a swapped fragment
        assert int(page.locator("#live").get_attribute("data-swaps") or 0) >= 1
        accepted = page.locator('tr[data-route="sim-a"] td.accepted')  # Prometheus' count
        eventually(lambda: _number(accepted.inner_text()) > 0 or None, timeout=30)
        _shot(page, tmp_path, "overview")
        if os.environ.get("HEXCAST_UPDATE_SCREENSHOT") == "1":
            _docs_screenshot(world, page)
    eventually(lambda: _finished(world, campaign), timeout=60)


def _docs_screenshot(world: World, page: Page) -> None:
    """docs/console-overview.png: two tenants' campaigns half sent, one of them projected to
    miss its deadline, the metrics scraped (then both are cancelled)."""
    brands = [(_db(_recipients(world.dsn, "Holiday Outfitters", 500, 90)), "Black Friday evening", 4.0, 600),
              (_db(_recipients(world.dsn, "Corner Coffee", 600, 60)), "Loyalty double points", 3.0, 12)]
    started = [(tenant, _campaign(world, tenant, name, rate=rate, deadline_s=deadline))
               for tenant, name, rate, deadline in brands]
    bars = [page.locator(f'tr[data-campaign="{c}"] progress') for _, c in started]
    eventually(lambda: all(float(b.get_attribute("value") or 0) >= 25 for b in bars) or None
               if all(b.count() for b in bars) else None, timeout=60)
    time.sleep(2.5)  # one more swap, with the rates of the last scrapes
    page.screenshot(path=str(ROOT / "docs" / "console-overview.png"))
    for tenant, campaign in started:
        httpx.post(f"{world.stack.api_url}/v1/campaigns/{campaign}/cancel", timeout=30,
                   headers={"X-API-Key": tenant.api_key}).raise_for_status()


def test_pause_from_the_campaign_page_stops_the_run_and_resume_finishes_it(
    world: World, browser: Browser, tmp_path: Path,
) -> None:
    tenant = _db(_recipients(world.dsn, "console-pause", 100, 30))
    campaign = _campaign(world, tenant, "Pause me", rate=3.0)
    prefix = f"{PHONES}01"

    def sent() -> int:
        return len(world.ledger("sim-a", prefix)) + len(world.ledger("sim-b", prefix))

    with _console(browser, world, OPERATOR_TOKEN) as page:
        page.goto(f"/console/campaigns/{campaign}")
        progress = page.locator("#run-progress")
        expect(progress).to_be_visible(timeout=30_000)
        eventually(lambda: float(progress.get_attribute("value") or 0) >= 2 or None, timeout=30)
        _confirm(page, "pause", "carrier outage")
        expect(page.locator(".card.head .badge")).to_have_text("paused")
        assert _run(world, campaign)["state"] == "paused"

        def settled() -> int | None:  # calls already made finish; then nothing more goes out
            before = sent()
            time.sleep(1.0)
            return before if sent() == before else None

        stopped = eventually(settled, timeout=30)
        time.sleep(2.0)
        assert sent() == stopped < 30
        _shot(page, tmp_path, "paused")
        _confirm(page, "resume", "outage over")
        expect(page.locator(".card.head .badge")).to_have_text("active")
        eventually(lambda: _finished(world, campaign), timeout=90)
        _shot(page, tmp_path, "resumed")
    numbers = world.ledger("sim-a", prefix) + world.ledger("sim-b", prefix)
    assert sorted(numbers) == [f"{PHONES}{i:04d}" for i in range(100, 130)]  # each once
    audit = _db(fetch_rows(world.dsn, "SELECT action, actor, reason FROM operator_actions"
                           " WHERE target = $1 ORDER BY id", f"campaign:{campaign}"))
    assert [(a["action"], a["actor"], a["reason"]) for a in audit] == [
        ("campaign.pause", "console:operator", "carrier outage"),
        ("campaign.resume", "console:operator", "outage over")]


def test_a_phone_search_shows_the_history_with_the_raw_provider_status(
    world: World, browser: Browser, tmp_path: Path,
) -> None:
    tenant = _db(_recipients(world.dsn, "console-search", 300, 2))
    phone = f"{PHONES}0300"
    campaign = _campaign(world, tenant, "Search me", rate=10.0)
    api = httpx.Client(base_url=world.stack.api_url, headers={"X-API-Key": tenant.api_key}, timeout=30)

    def delivered() -> dict[str, Any] | None:
        found = api.get("/v1/messages", params={"phone": phone}).json()["messages"]
        return found[0] if found and found[0]["state"] == "delivered" else None

    message = eventually(delivered, timeout=60)
    assert message["provider_status"]
    with _console(browser, world, OPERATOR_TOKEN) as page:
        page.click("header nav >> text=Messages")
        page.fill("input[name=q]", phone)
        page.click("form.search button")
        card = page.locator(f'[data-message="{message["message_key"]}"]')
        expect(card).to_be_visible()
        expect(card.locator(".provider-status")).to_have_text(message["provider_status"])
        for event in message["events"]:
            expect(card.locator("table.history")).to_contain_text(event["to_state"])
        assert card.locator("table.history tbody tr").count() == len(message["events"])
        _shot(page, tmp_path, "search")
    eventually(lambda: _finished(world, campaign), timeout=60)


def test_draining_a_route_changes_its_badge_and_sends_go_to_the_other(
    world: World, browser: Browser, tmp_path: Path,
) -> None:
    """sim-a (the primary) is drained while a campaign sends: its badge changes, its ledger
    stops growing once the senders took the drain (about a second), sim-b sends the rest."""
    tenant = _db(_recipients(world.dsn, "console-drain", 200, 60))
    prefix = f"{PHONES}02"
    campaign = _campaign(world, tenant, "Drained midway", rate=8.0)
    with _console(browser, world, OPERATOR_TOKEN) as page:
        state = page.locator('tr[data-route="sim-a"] .route-state')
        expect(state).to_contain_text("enabled")
        eventually(lambda: len(world.ledger("sim-a", prefix)) >= 5 or None, timeout=30)
        page.goto("/console/routes/sim-a")
        expect(page.locator("#request-latency svg.chart")).to_be_visible()  # from Prometheus
        _confirm(page, "drain", "carrier incident")
        _shot(page, tmp_path, "route")
        page.goto("/console")
        expect(state).to_contain_text("draining")
        expect(state).to_contain_text("drained")
        expect(page.locator('tr[data-route="sim-b"] .route-state')).to_contain_text("enabled")
        _shot(page, tmp_path, "drained")
        time.sleep(2.0)
        on_a = len(world.ledger("sim-a", prefix))
        eventually(lambda: _finished(world, campaign), timeout=60)
        assert len(world.ledger("sim-a", prefix)) == on_a < 60  # nothing new to the drained route
        both = world.ledger("sim-a", prefix) + world.ledger("sim-b", prefix)
        assert sorted(both) == [f"{PHONES}{i:04d}" for i in range(200, 260)]  # each once
        page.goto("/console/routes/sim-a")
        _confirm(page, "enable", "incident over")
        page.goto("/console")
        expect(state).not_to_contain_text("drain")


def test_a_tenant_cannot_see_search_or_act_on_another_tenants_campaign(
    world: World, browser: Browser, tmp_path: Path,
) -> None:
    owner = _db(_recipients(world.dsn, "console-owner", 400, 1))
    other = _db(make_tenant(world.dsn, prefix="console-other"))
    secret = _campaign(world, owner, "Owner secret launch", rate=10.0)
    eventually(lambda: _finished(world, secret), timeout=60)
    later = _campaign(world, owner, "Owner next launch", rate=10.0, now=False)
    mine = _campaign(world, other, "Other own launch", rate=10.0, now=False)
    phone = f"{PHONES}0400"
    with _console(browser, world, other.api_key) as page:
        expect(page.locator("#recent")).to_contain_text("Other own launch")
        assert "Owner" not in page.content()
        for path in (f"/console/campaigns/{secret}", f"/console/campaigns/{later}/confirm?action=pause",
                     f"/console/fragments/campaigns/{later}", "/console/routes/sim-a"):
            answer = page.goto(path)
            assert answer is not None
            assert answer.status == 404, path
            assert "Owner" not in page.content()
        page.goto(f"/console/messages?q={phone.replace('+', '%2B')}")
        expect(page.locator("main")).to_contain_text("0 messages")
        assert "data-message" not in page.content()
        page.goto(f"/console/campaigns/{mine}")
        csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
        action = f"/console/campaigns/{later}/actions"
        form: dict[str, str | float | bool] = {"action": "cancel", "reason": "forged"}
        assert page.request.post(action, form=form).status == 403
        assert page.request.post(action, form={**form, "csrf": "x" * len(csrf)}).status == 403
        assert page.request.post(action, form={**form, "csrf": csrf}).status == 404
        assert page.request.post("/console/routes/sim-a/actions",
                                 form={"action": "drain", "reason": "forged", "csrf": csrf}).status == 404
        _shot(page, tmp_path, "isolated")
    states = _db(fetch_rows(world.dsn, "SELECT state FROM campaigns WHERE id = $1", later))
    assert [r["state"] for r in states] == ["active"]

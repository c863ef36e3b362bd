"""Issue 23: the console's first paint at scale, ``python -m bench console --messages 5000000
--campaigns 20`` (not part of ``all``).

1. A throwaway database: ``--tenants`` tenants and their recipients; ``--messages`` rows in
   ``messages`` over the last ``--hours`` hours (COPY; the secondary indexes built after it, as a
   restore does) over lanes, outcomes, routes and tenants, half the newest ``--fresh`` (2 %) waiting;
   ``--campaigns`` running runs (a wave per zone: two done, one releasing, one due; the forecast;
   tallies as the trigger and the scheduler's folding leave them) and ``--finished`` finished
   ones (their waves done) with the older bulk messages; three firing alerts. ANALYZE.
2. The api alone (with an embedded broker, which its producer needs), **without Prometheus**:
   every Prometheus cell says "metrics not connected" and nothing is asked of it.
3. ``--rounds`` times each after a warm-up: (a) GET /console, the fragment it polls and that
   fragment filtered to one tenant, on one keep-alive connection with the session cookie; (b)
   Chromium (Playwright) navigating to /console in a fresh context (cold cache) each time:
   first-contentful-paint, DOMContentLoaded, responseStart; (c) every statement of one overview
   request (session, tenant filter, the view: the api's own code, ``--rounds`` + 1 times on one
   connection, so prepared statements reach the api's plans), with its actual plan, captured by
   auto_explain loaded into that session; a Seq Scan on ``messages`` is flagged. The scans
   ``pg_stat_user_tables`` counted on ``messages`` over (a) and (b) are reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import statistics
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from playwright.sync_api import sync_playwright

from bench import ui
from bench.common import Procs, bench_settings, clear_redis, database, loadavg, machine, percentile
from bench.console_data import load
from bench.providers import save
from hexcast.console.access import COOKIE
from hexcast.console.overview import overview
from hexcast.console.queries import tenants as tenant_list
from hexcast.console.sessions import digest, find_session
from hexcast.core.cache import connect_redis
from hexcast.core.db import connect_pool
from hexcast.core.settings import Settings
from hexcast.devstack.broker import EmbeddedBroker
from hexcast.devstack.procs import wait_http

__all__ = ["add_arguments", "bars", "markdown", "outline", "parse_notice", "run", "seq_scans",
           "summary"]

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]



def summary(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "median": round(statistics.median(values), 1) if values else 0.0,
            "p95": round(percentile(values, 95), 1)}


def bars(html: str) -> int:
    """Progress bars of running campaigns on an overview page or fragment."""
    return html.count("<progress data-run=")


def sign_in(api_url: str, token: str) -> str:
    """A console session of the operator: the cookie's value."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        form = client.get("/console/login").raise_for_status().text
        found = re.search(r'name="login_token" value="([^"]+)"', form)
        answer = client.post("/console/login",
                             data={"credential": token, "login_token": found[1] if found else ""})
        if answer.status_code != 303 or COOKIE not in answer.cookies:
            raise RuntimeError(f"console sign-in failed: {answer.status_code}")
        return str(answer.cookies[COOKIE])


def server_times(api_url: str, session: str, paths: dict[str, int], rounds: int) -> dict[str, Any]:
    """Per path: its ms over ``rounds`` after a warm-up, and its size; each answer must show the
    number of progress bars given."""
    out = {}
    with httpx.Client(base_url=api_url, timeout=60, cookies={COOKIE: session}) as client:
        for path, expected in paths.items():
            times: list[float] = []
            size = 0
            for i in range(rounds + 1):
                t0 = time.perf_counter()
                answer = client.get(path).raise_for_status()
                ms = (time.perf_counter() - t0) * 1000
                if bars(answer.text) != expected:
                    raise RuntimeError(f"{path}: {bars(answer.text)} progress bars, not {expected}")
                times, size = times + [ms] if i else times, len(answer.content)
            out[path] = summary(times) | {"bytes": size}
    return out


_PAINT = """() => new Promise(resolve => {
  const done = () => {
    const p = performance.getEntriesByName('first-contentful-paint')[0];
    const n = performance.getEntriesByType('navigation')[0];
    resolve({fcp: p ? p.startTime : -1, dcl: n.domContentLoadedEventEnd, ttfb: n.responseStart});
  };
  if (performance.getEntriesByName('first-contentful-paint').length) { done(); return; }
  new PerformanceObserver(done).observe({type: 'paint', buffered: true});
  setTimeout(done, 10000);
})"""


def browser_times(api_url: str, session: str, rounds: int, expected: int) -> dict[str, Any]:
    """Chromium's first-contentful-paint, DOMContentLoaded and responseStart (ms from navigation
    start) of /console, a cold context each time."""
    found: dict[str, list[float]] = {"fcp": [], "dcl": [], "ttfb": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            for i in range(rounds + 1):
                context = browser.new_context(base_url=api_url, viewport={"width": 1366, "height": 768})
                try:
                    context.add_cookies([{"name": COOKIE, "value": session, "domain": "127.0.0.1",
                                          "path": "/console"}])
                    page = context.new_page()
                    page.goto("/console", wait_until="load")
                    if bars(page.content()) != expected:
                        raise RuntimeError(f"the browser's overview at {page.url} lacks its progress bars")
                    t = page.evaluate(_PAINT)
                finally:
                    context.close()
                for k in found if i else ():
                    found[k].append(float(t[k]))
        finally:
            browser.close()
    return {k: summary(v) for k, v in found.items()}


_EXPLAIN = ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_analyze = on", "SET auto_explain.log_buffers = on",
            "SET auto_explain.log_format = 'json'", "SET auto_explain.log_level = 'notice'",
            "SET client_min_messages = 'notice'")
_DRIVER = ("WITH RECURSIVE typeinfo_tree", "SELECT current_setting('jit')", "SELECT set_config('jit'")
"""asyncpg's own statements (type introspection, once per connection and type): left out."""


def parse_notice(text: str) -> tuple[float, str, dict[str, Any]] | None:
    """(ms, the query on one line, its plan) of an auto_explain message (JSON format); None for
    any other notice and for the driver's own statements."""
    head, sep, body = text.partition("plan:")
    if not sep or not head.startswith("duration:"):
        return None
    doc = json.loads(body)
    query = " ".join(doc["Query Text"].split())
    return None if query.startswith(_DRIVER) else (float(head.split()[1]), query, doc["Plan"])


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def seq_scans(plan: dict[str, Any]) -> list[str]:
    """The relations a plan reads with a Seq Scan."""
    return sorted({n.get("Relation Name", "?") for n in _nodes(plan) if n.get("Node Type") == "Seq Scan"})


def outline(plan: dict[str, Any], depth: int = 0, *, actual: bool = True) -> list[str]:
    """A plan, a line a node: what it read, by which index and (``actual``) its rows × loops, ms
    and buffers."""
    line = "  " * depth + plan.get("Node Type", "?") + "".join(f" {word} {plan[key]}" for key, word in (
        ("Relation Name", "on"), ("Index Name", "using")) if key in plan)
    if actual:
        line += (f" (rows {plan.get('Actual Rows', '?')}×{plan.get('Actual Loops', '?')},"
                 f" {plan.get('Actual Total Time', '?')} ms,"
                 f" buffers {plan.get('Shared Hit Blocks', 0) + plan.get('Shared Read Blocks', 0)})")
    return [line, *(deeper for child in plan.get("Plans", ())
                    for deeper in outline(child, depth + 1, actual=actual))]


async def _request(conn: Any, redis: Any, settings: Settings, session: str, tenant_id: int | None
                   ) -> None:
    """What one overview request reads: its session, the tenant filter's names and the view."""
    await find_session(conn, session_id=session, token_digest=digest(settings.operator_token or ""))
    await tenant_list(conn)
    await overview(conn, redis, settings, tenant_id=tenant_id, operator=True)
    await asyncio.sleep(0.05)  # the notices of the last statement


async def statements(dsn: str, settings: Settings, session: str, scopes: dict[str, int | None],
                     rounds: int) -> list[dict[str, Any]]:
    """Per scope and statement of one overview request: ms in each round, the last round's plan
    and the relations any round scanned sequentially."""
    pool, redis = await connect_pool(dsn, min_size=1, max_size=1), connect_redis(settings.redis_url)
    heard: list[tuple[float, str, dict[str, Any]]] = []
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def listen(_conn: object, message: Any) -> None:
        parsed = parse_notice(str(message.message))
        if parsed is not None:
            heard.append(parsed)

    try:
        async with pool.acquire() as conn:
            for sql in _EXPLAIN:
                await conn.execute(sql)
            conn.add_log_listener(listen)
            for scope, tenant_id in scopes.items():
                for _ in range(rounds + 1):
                    heard.clear()
                    await _request(conn, redis, settings, session, tenant_id)
                    for ms, query, plan in heard:
                        s = found.setdefault((scope, query), {"scope": scope, "query": query, "ms": [],
                                                              "first": plan})
                        s["ms"].append(ms)
                        s["plan"], s["seq"] = plan, {*s.get("seq", ()), *seq_scans(plan)}
    finally:
        await pool.close()
        await redis.aclose()
    return [_statement(s) for s in found.values()]


def _statement(s: dict[str, Any]) -> dict[str, Any]:
    """One statement's rounds: its plan in the first round too if it had another shape then."""
    changed = outline(s["first"], actual=False) != outline(s["plan"], actual=False)
    return {"scope": s["scope"], "query": s["query"], "ms": [round(m, 3) for m in s["ms"]],
            "median_ms": round(statistics.median(s["ms"]), 3), "seq_scans": sorted(s["seq"]),
            "plan": outline(s["plan"]), "first_plan": outline(s["first"]) if changed else None}


async def scans(dsn: str) -> tuple[int, int]:
    """Sequential and index scans PostgreSQL counted on ``messages`` so far (statistics reach the
    view within a second of a backend going idle: waited for)."""
    await asyncio.sleep(1.5)
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT seq_scan, COALESCE(idx_scan, 0) AS idx_scan"
                                  " FROM pg_stat_user_tables WHERE relname = 'messages'")
        return (int(row["seq_scan"]), int(row["idx_scan"])) if row else (0, 0)
    finally:
        await conn.close()


def variant(procs: Procs, settings: Settings, paths: dict[str, int], rounds: int
            ) -> tuple[dict[str, Any], str]:
    """(a) and (b) against an api with ``settings``; the measures and the session used."""
    api = procs.start("api", ["api"], settings=settings)
    try:
        wait_http(f"{settings.api_public_url}/health", child=api)
        before = asyncio.run(scans(settings.database_url))
        session = sign_in(settings.api_public_url, settings.operator_token or "")
        found = {"server": server_times(settings.api_public_url, session, paths, rounds),
                 "browser": browser_times(settings.api_public_url, session, rounds, paths["/console"])}
    finally:
        procs.stop("api")
    after = asyncio.run(scans(settings.database_url))
    return found | {"messages_scans": {"seq": after[0] - before[0], "idx": after[1] - before[1]}}, session


def _measure(broker_url: str, dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    settings = bench_settings(broker_url, dsn).model_copy(update={"operator_token": token})
    loaded = asyncio.run(load(dsn, args))
    first = loaded["tenants"][0]
    paths = {"/console": args.campaigns, "/console/fragments/overview": args.campaigns,
             f"/console/fragments/overview?tenant={first}": sum(t == first for _, t in loaded["running"])}
    variants = {}
    with Procs(settings) as procs:
        variants["no prometheus"], session = variant(procs, settings, paths, args.rounds)
    scopes = {"all tenants": None, f"tenant {first}": first}
    return {"loaded": loaded, "variants": variants,
            "statements": asyncio.run(statements(dsn, settings, session, scopes, args.rounds))}


def markdown(doc: dict[str, Any]) -> str:
    a, loaded = doc["args"], doc["loaded"]
    lines = [f"{a['messages']:,} messages ({loaded['waiting']:,} waiting; {loaded['messages_mb']:,} MB with"
             f" indexes), {a['campaigns']} running campaigns ({a['finished']} finished) over {a['tenants']}"
             f" tenants; loaded in {loaded['load_s']} s (COPY {loaded['copy_s']} s); {a['rounds']} rounds"
             " after a warm-up; loadavg at the end"
             f" {doc.get('loadavg_end', 'n/a')}", "",
             "| api | measure | median ms | p95 ms | n | bytes |", "|---|---|---|---|---|---|"]
    names = {"ttfb": "Chromium responseStart", "dcl": "Chromium DOMContentLoaded",
             "fcp": "Chromium first-contentful-paint"}
    for name, v in doc["variants"].items():
        lines += [f"| {name} | GET {p} | {s['median']} | {s['p95']} | {s['n']} | {s['bytes']:,} |"
                  for p, s in v["server"].items()]
        lines += [f"| {name} | {names[k]} | {s['median']} | {s['p95']} | {s['n']} | |"
                  for k, s in v["browser"].items()]
    lines += [f"\nscans of `messages` over the requests ({name}): {v['messages_scans']['seq']} sequential,"
              f" {v['messages_scans']['idx']} by index" for name, v in doc["variants"].items()]
    lines += ["", "| scope | statement | median ms (auto_explain) | seq scans |", "|---|---|---|---|"]
    lines += [f"| {s['scope']} | `{s['query'][:100].replace('|', '¦')}` | {s['median_ms']} |"
              f" {', '.join(s['seq_scans']) or '—'} |" for s in doc["statements"]]
    flagged = sorted({s["query"][:60] for s in doc["statements"] if "messages" in s["seq_scans"]})
    lines.append("\n**Seq Scan on messages** in: " + "; ".join(flagged) if flagged
                 else "\nno statement of the overview scans `messages` sequentially")
    lines += ["", "plans (all tenants, last round):", "```"]
    for s in doc["statements"]:
        if s["scope"] == "all tenants":
            lines += [s["query"][:160], *s["plan"], ""]
            if s.get("first_plan"):
                lines += ["(its plan in the first round, before the cached one:)", *s["first_plan"], ""]
    return "\n".join([*lines, "```"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=200_000, help="rows in messages (the issue: 5000000)")
    parser.add_argument("--campaigns", type=int, default=20, help="running campaign runs")
    parser.add_argument("--finished", type=int, default=200, help="finished runs (the older bulk messages)")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--hours", type=float, default=6.0, help="the messages' time span, ending now")
    parser.add_argument("--rounds", type=int, default=10, help="measures of each kind, after one warm-up")
    parser.add_argument("--fresh", type=float, default=0.02,
                        help="the newest share of the messages, half of which still wait (1%% of all)")


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Load, measure, save bench/out/console-<UTC>.json and print the table."""
    doc: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                           "command": command, "args": vars(args) | {"scenario": "console"}}
    started = time.perf_counter()
    try:
        with EmbeddedBroker() as broker, ui.live(), database() as dsn:
            doc |= _measure(broker.url, dsn, args)
    finally:
        clear_redis()
    doc |= {"wall_s": round(time.perf_counter() - started, 1), "loadavg_end": loadavg()}
    doc["markdown"] = markdown(doc)
    ui.console.print(f"results: {save(doc, 'console')}")
    ui.console.print(doc["markdown"])
    return doc

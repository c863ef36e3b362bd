"""The visit load generator, run as its own process: ``python -m bench.loadgen ...``.

Posts batches of 20 events to ``POST /v1/visits`` as mobile SDKs do. ``--per-user 20`` puts
one user's walk into a store in each post (one 20-event record on ``visits``);
``--per-user 1`` puts 20 users' single events in each post (twenty 1-event records).
``--rate`` paces posts to a steady visits/s (0: as fast as the API answers). Prints one JSON
line: posted, accepted, seconds, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from targeting.geofence import destination

__all__ = ["LoadPlan", "batch_events", "main"]

EVENTS_PER_POST = 20


class LoadPlan:
    """Which users post what: deterministic from the post number."""

    def __init__(self, spots: list[list[float]], *, users: int, user_offset: int, per_user: int,
                 seed: int) -> None:
        self.spots = spots
        self.users = users
        self.user_offset = user_offset
        self.per_user = per_user
        self.run = uuid.uuid4().hex[:6]
        self.seed = seed

    def user(self, n: int) -> str:
        return f"v{self.user_offset + n % self.users}"

    def post(self, n: int, now: datetime) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + n)
        if self.per_user == EVENTS_PER_POST:
            spot = self.spots[rng.randrange(len(self.spots))]
            events = batch_events(spot, self.user(n), f"{self.run}-{n}", now, rng)
        else:
            events = []
            for i in range(EVENTS_PER_POST):
                spot = self.spots[rng.randrange(len(self.spots))]
                events += batch_events(spot, self.user(n * EVENTS_PER_POST + i), f"{self.run}-{n}-{i}",
                                       now, rng)[-1:]
        return {"events": events}


def batch_events(spot: list[float], user: str, tag: str, now: datetime,
                 rng: random.Random) -> list[dict[str, Any]]:
    """A walk into a store: 5 fixes approaching from outside the fence, then 15 inside it,
    20 s apart, ending now (so the last fix is the freshest)."""
    lat, lng, radius = spot
    events = []
    for i in range(EVENTS_PER_POST):
        far = i < 5
        dist = radius * (2.5 - 0.2 * i) if far else rng.uniform(0, radius * 0.5)
        plat, plng = destination(lat, lng, dist, rng.uniform(0, 360))
        ts = now - timedelta(seconds=20 * (EVENTS_PER_POST - 1 - i))
        events.append({"event_id": f"{tag}-{i}", "user_id": user, "lat": round(plat, 6),
                       "lng": round(plng, 6), "accuracy_m": 10.0, "ts": ts.isoformat()})
    return events


async def _run(args: argparse.Namespace, plan: LoadPlan) -> dict[str, Any]:
    posts = args.visits // EVENTS_PER_POST
    counter = iter(range(posts))
    result = {"posted": 0, "accepted": 0, "records": 0, "errors": 0}
    pace = args.rate / EVENTS_PER_POST if args.rate else 0.0
    started = time.perf_counter()

    async def worker(client: httpx.AsyncClient) -> None:
        for n in counter:
            if pace:
                await asyncio.sleep(max(0.0, started + n / pace - time.perf_counter()))
            response = await client.post("/v1/visits", json=plan.post(n, datetime.now(UTC)))
            if response.status_code != 202:
                result["errors"] += 1
                continue
            body = response.json()
            result["posted"] += 1
            result["accepted"] += body["accepted"]
            result["records"] += body["records"]

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.api, headers={"X-API-Key": args.key}, timeout=60,
                                 limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
    return {**result, "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--api", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--spots", type=Path, required=True, help="JSON [[lat, lng, radius_m], ...]")
    parser.add_argument("--visits", type=int, required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--user-offset", type=int, default=0)
    parser.add_argument("--per-user", type=int, choices=(1, EVENTS_PER_POST), default=EVENTS_PER_POST)
    parser.add_argument("--rate", type=float, default=0.0, help="visits/s; 0 = as fast as possible")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    plan = LoadPlan(json.loads(args.spots.read_text()), users=args.users, user_offset=args.user_offset,
                    per_user=args.per_user, seed=args.seed)
    sys.stdout.write(json.dumps(asyncio.run(_run(args, plan))) + "\n")


if __name__ == "__main__":
    main()

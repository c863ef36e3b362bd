"""Fault schedules: what happens to a :class:`~hexcast.chaos.world.World`, and when.

A schedule is a pure function of its seed, so a failing run is replayed with the same
``--seed``. Kinds: ``kill`` (SIGKILL a process of a kind, start it again at once),
``postgres`` and ``redis`` (stop the server, keep it down a few seconds, start it again),
``add`` and ``remove`` (one more process of a kind joins its consumer group; one leaves).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Fault", "FaultKind", "each_once", "random_plan", "rebalance"]

FaultKind = Literal["kill", "postgres", "redis", "add", "remove"]
INFRA: tuple[FaultKind, ...] = ("postgres", "redis")


@dataclass(frozen=True, slots=True, order=True)
class Fault:
    at_s: float  # seconds after the workload started
    kind: FaultKind
    target: str = ""  # a process kind for kill, add and remove

    def describe(self) -> str:
        return f"{self.kind} {self.target}".strip()


def _spread(seed: int, window_s: float, n: int) -> list[float]:
    """``n`` moments in the window, one in each of ``n`` equal slots (jittered in the slot's
    middle half), so faults neither pile up nor leave the end of the window quiet."""
    rng = random.Random(seed)  # noqa: S311 - reproducible, not secret
    slot = window_s / max(n, 1)
    return [round(slot * (i + rng.uniform(0.25, 0.75)), 2) for i in range(n)]


def each_once(seed: int, *, window_s: float, kinds: Sequence[str]) -> list[Fault]:
    """One kill of every process kind, one Redis and one PostgreSQL restart, in an order the
    seed shuffles, spread over the window (the CI-sized chaos run)."""
    faults: list[tuple[FaultKind, str]] = [("kill", k) for k in kinds] + [(i, "") for i in INFRA]
    random.Random(seed).shuffle(faults)  # noqa: S311
    return [Fault(at, kind, target) for at, (kind, target) in
            zip(_spread(seed, window_s, len(faults)), faults, strict=True)]


def random_plan(seed: int, *, window_s: float, count: int, kinds: Sequence[str]) -> list[Fault]:
    """``count`` faults drawn by the seed: mostly kills of any kind, some infrastructure
    restarts, and scale-outs each followed later by a scale-in of the same kind."""
    rng = random.Random(seed)  # noqa: S311
    moments = _spread(seed, window_s, count)
    faults: list[Fault] = []
    grown: list[str] = []
    for at in moments:
        roll = rng.random()
        if grown and roll < 0.15:
            faults.append(Fault(at, "remove", grown.pop(0)))
        elif roll < 0.25:
            kind = rng.choice(["sender-bulk", "matcher"])
            grown.append(kind)
            faults.append(Fault(at, "add", kind))
        elif roll < 0.4:
            faults.append(Fault(at, rng.choice(INFRA)))
        else:
            faults.append(Fault(at, "kill", rng.choice(list(kinds))))
    return faults


def rebalance(*, window_s: float, kinds: Sequence[str] = ("sender-bulk", "matcher")) -> list[Fault]:
    """1 → 2 → 1 of each kind: a second process joins at a fifth of the window, and the
    first one leaves at three fifths (so the partitions it held move twice)."""
    return sorted([Fault(round(window_s * 0.2, 2), "add", k) for k in kinds]
                  + [Fault(round(window_s * 0.6, 2), "remove", k) for k in kinds])

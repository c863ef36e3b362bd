"""The loop watchdog reports what held the loop, and how much of it was garbage collection."""

from __future__ import annotations

import asyncio
import gc
import time

from hexcast.core.watchdog import LoopWatchdog, Stall


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # a blocking call on the loop, as a CPU-bound step would be


def collect_cycles() -> None:
    junk = []
    for _ in range(200_000):
        cell: list[object] = []
        cell.append(cell)  # a reference cycle: only the cyclic collector frees it
        junk.append(cell)
    del junk
    gc.collect()


async def _watch(work: object, *, stall_ms: float = 100.0) -> tuple[LoopWatchdog, list[Stall]]:
    seen: list[Stall] = []
    dog = LoopWatchdog(stall_ms=stall_ms, beat_s=0.01, on_stall=seen.append)
    task = asyncio.create_task(dog.run())
    await asyncio.sleep(0.05)  # a few beats first
    work()  # type: ignore[operator]
    await asyncio.sleep(0.05)  # the beat that comes late reports it
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return dog, seen


def test_a_held_loop_is_reported_with_the_stack_that_held_it() -> None:
    dog, seen = asyncio.run(_watch(lambda: hold_the_loop(0.4)))
    held = [s for s in seen if any("hold_the_loop" in line for line in s.stack)]
    assert held, seen
    assert held[0].late_ms >= 100.0
    assert dog.stalls == len(seen)


def test_a_loop_that_keeps_beating_reports_nothing() -> None:
    async def yielding() -> None:
        for _ in range(20):
            await asyncio.sleep(0.01)

    async def main() -> list[Stall]:
        seen: list[Stall] = []
        dog = LoopWatchdog(stall_ms=1_000.0, beat_s=0.01, on_stall=seen.append)
        task = asyncio.create_task(dog.run())
        await yielding()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return seen

    assert asyncio.run(main()) == []


def test_collector_time_inside_a_stall_is_counted() -> None:
    _, seen = asyncio.run(_watch(lambda: (collect_cycles(), hold_the_loop(0.2)), stall_ms=50.0))
    assert seen
    assert sum(s.gc_collections for s in seen) >= 1
    assert sum(s.gc_ms for s in seen) > 0.0


def test_the_collector_callback_is_removed_when_the_watchdog_stops() -> None:
    before = list(gc.callbacks)
    asyncio.run(_watch(lambda: None))
    assert gc.callbacks == before

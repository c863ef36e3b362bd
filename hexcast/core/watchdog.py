"""Event-loop stall reports for long-running workers: how long the loop was held, and by what.

A worker that holds its event loop delays every message behind it, and a profile of a whole
run hides a few long stalls among many short waits. The watchdog beats on the loop every
``beat_s``; a thread notices a beat that is overdue and, while the loop is still held, takes
the loop thread's stack. When the loop is back, the stall is reported with its length, that
stack, and how long the cyclic garbage collector ran meanwhile (the collector holds the
interpreter, so the thread can only look once it is done: a stall that is mostly GC time has
the stack of whatever ran next).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hexcast.core.logging import get_logger

__all__ = ["LoopWatchdog", "Stall"]

log = get_logger(__name__)

_STACK_FRAMES = 10


@dataclass(frozen=True)
class Stall:
    """One beat that came ``late_ms`` late; ``gc_ms`` of it the cyclic collector ran."""

    late_ms: float
    gc_ms: float
    gc_collections: int
    stack: list[str] = field(default_factory=list)  # innermost last; empty if not caught


def _log_stall(stall: Stall) -> None:
    log.warning("event_loop_stalled", late_ms=round(stall.late_ms), gc_ms=round(stall.gc_ms),
                gc_collections=stall.gc_collections, stack="".join(stall.stack).rstrip())


class LoopWatchdog:
    """Run :meth:`run` as a task on the loop to watch; each stall ≥ ``stall_ms`` is passed to
    ``on_stall`` (by default logged as ``event_loop_stalled``)."""

    def __init__(self, *, stall_ms: float, beat_s: float = 0.05,
                 on_stall: Callable[[Stall], None] = _log_stall) -> None:
        self.stall_s = stall_ms / 1000
        self.beat_s = beat_s
        self.on_stall = on_stall
        self.stalls = 0
        self._beat = time.monotonic()
        self._loop_thread: int | None = None
        self._stack: list[str] | None = None
        self._gc_s = 0.0
        self._gc_runs = 0
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_s += time.perf_counter() - self._gc_started
            self._gc_runs += 1

    async def run(self) -> None:
        self._loop_thread = threading.get_ident()
        gc.callbacks.append(self._on_gc)
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(stop,), name="loop-watchdog", daemon=True)
        watcher.start()
        try:
            while True:
                before, gc_before, runs_before = time.monotonic(), self._gc_s, self._gc_runs
                self._beat = before
                await asyncio.sleep(self.beat_s)
                late = time.monotonic() - before - self.beat_s
                if late >= self.stall_s:
                    self._report(late, self._gc_s - gc_before, self._gc_runs - runs_before)
                self._stack = None
        finally:
            stop.set()
            gc.callbacks.remove(self._on_gc)

    def _report(self, late_s: float, gc_s: float, gc_runs: int) -> None:
        self.stalls += 1
        self.on_stall(Stall(late_s * 1000, gc_s * 1000, gc_runs, self._stack or []))

    def _watch(self, stop: threading.Event) -> None:
        """Thread: take the loop thread's stack once per overdue beat."""
        while not stop.wait(self.stall_s / 4):
            overdue = time.monotonic() - self._beat > self.beat_s + self.stall_s / 2
            if overdue and self._stack is None and self._loop_thread is not None:
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None:
                    self._stack = traceback.format_stack(frame)[-_STACK_FRAMES:]

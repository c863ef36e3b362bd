"""One rich progress display shared by every scenario of a run (rich allows one live display)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["console", "live", "step", "task"]

console = Console(width=None if sys.stdout.isatty() else 160)
_progress: Progress | None = None


@contextlib.contextmanager
def live() -> Iterator[Progress]:
    """The run's progress display (nested calls reuse the open one)."""
    global _progress
    if _progress is not None:
        yield _progress
        return
    _progress = Progress(TextColumn("{task.description:<34}"), BarColumn(),
                         TextColumn("{task.completed:>12,.0f}/{task.total:,.0f}"), TimeElapsedColumn(),
                         console=console)
    try:
        with _progress:
            yield _progress
    finally:
        _progress = None


def task(description: str, total: float) -> TaskID:
    """A bar on the open display (a no-op display when none is open)."""
    if _progress is None:
        raise RuntimeError("bench.ui.task() outside bench.ui.live()")
    return _progress.add_task(description, total=total)


def step(task_id: TaskID, completed: float, *, description: str | None = None) -> None:
    if _progress is not None:
        _progress.update(task_id, completed=completed, description=description)

"""What runs beside one holiday campaign (``bench.providers.run_holiday_through``)."""

from __future__ import annotations

from typing import Protocol

from bench.common import Procs

__all__ = ["Alongside", "Nothing"]


class Alongside(Protocol):
    """Work beside the campaign (bench/outbox.py: a webhook endpoint and its worker,
    transactional sends): set up once the processes are up (before the probe), started at
    run-now, stopped once the campaign is in the ledger, finished before the processes stop.
    ``posted()``: the ledger entries so far that are not the campaign's."""

    def setup(self, procs: Procs, tenant_id: int, key: str) -> None: ...
    def start(self) -> None: ...
    def posted(self) -> int: ...
    def stop(self) -> None: ...
    def finish(self) -> None: ...


class Nothing:
    """Nothing alongside (the default)."""

    def setup(self, procs: Procs, tenant_id: int, key: str) -> None:
        return

    def start(self) -> None:
        return

    def posted(self) -> int:
        return 0

    def stop(self) -> None:
        return

    def finish(self) -> None:
        return

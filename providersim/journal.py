"""The simulator's ledger on disk, so a provider that restarts remembers what it accepted.

A real provider does not forget a message because one of its servers died: its dedupe on the
client reference and its status lookup keep answering. With ``ledger_path`` set, every
accepted message is appended to that file as one JSON line (written before the request is
answered, so a SIGKILL after the answer loses nothing: the bytes are in the kernel's page
cache), and a new process reads the file back at start. Receipts still waiting to be posted
when the process died are not kept: a restart loses them, as a real provider's outage delays
them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["LedgerJournal"]


class LedgerJournal:
    """Append-only JSON lines of ledger items (with what their dialect kept, ``extra``)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def read(self) -> Iterator[dict[str, Any]]:
        """The items written so far, oldest first; a last line cut short by a crash is
        skipped (its request was never answered)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(item, dict):
                    yield item

    def append(self, items: Sequence[dict[str, Any]]) -> None:
        if not items:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            if self._file.tell() and not self._ends_a_line():
                self._file.write("\n")  # after a line a crash cut short
        self._file.write("".join(json.dumps(i, separators=(",", ":")) + "\n" for i in items))
        self._file.flush()

    def _ends_a_line(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, 2)
            return fh.read(1) == b"\n"

    def truncate(self) -> None:
        """Forget everything (the simulator's ``/control/reset``)."""
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

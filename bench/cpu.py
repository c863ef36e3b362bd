"""CPU seconds per component over a measured interval, read from ``/proc``.

On this 2-core machine the stages compete for the same cores, so the question a profile
answers is not only "what is slow" but "who spends the CPU": each snapshot sums user + system
time of our child processes (by name), of all PostgreSQL backends, of Redis and of the broker;
a delta of two snapshots divided by the recipients sent gives CPU microseconds per recipient.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CpuSnapshot", "snapshot"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_GROUPS = (("postgres", "postgres"), ("redis-server", "redis"), ("tansu", "broker"))  # comm prefix


class CpuSnapshot:
    """CPU seconds by component at one moment, and the machine's busy and total seconds."""

    def __init__(self, by_group: dict[str, float], busy_s: float, total_s: float) -> None:
        self.by_group, self.busy_s, self.total_s = by_group, busy_s, total_s

    def since(self, earlier: CpuSnapshot) -> tuple[dict[str, float], float]:
        """CPU seconds per component between ``earlier`` and this one, and the machine's busy
        share of that interval (1.0 = every core busy all the time)."""
        # A group's processes that exited in between (connection pools closed) take their
        # time with them: such a delta would be negative; it is 0, and the time unattributed.
        groups = {g: round(max(0.0, s - earlier.by_group.get(g, 0.0)), 2)
                  for g, s in self.by_group.items()}
        total, busy = self.total_s - earlier.total_s, self.busy_s - earlier.busy_s
        # Processes that came and went in between (autovacuum workers, the bench's own
        # threads, anything else on the machine) are only in the machine's total.
        groups["unattributed"] = round(max(0.0, busy - sum(groups.values())), 2)
        return groups, busy / total if total > 0 else 0.0


def _postgres_role(pid: int) -> str:
    """``postgres`` for client backends, ``postgres-bg`` for autovacuum, checkpointer, WAL
    writer and the other background processes (their title says which)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "postgres"
    background = ("autovacuum", "checkpointer", "walwriter", "background writer", "logical",
                  "stats", "archiver")
    return "postgres-bg" if any(b in title for b in background) else "postgres"


def _proc_cpu(pid: int) -> tuple[str, float] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _machine() -> tuple[float, float]:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return (sum(parts) - idle) / _TICK, sum(parts) / _TICK


def snapshot(children: dict[str, int]) -> CpuSnapshot:
    """``children``: our processes by name → pid; the rest are grouped by command name."""
    by_group: dict[str, float] = {}
    named = {pid: name for name, pid in children.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        found = _proc_cpu(pid)
        if found is None:
            continue
        comm, seconds = found
        group = named.get(pid) or next((g for prefix, g in _GROUPS if comm.startswith(prefix)), None)
        if group == "postgres":
            group = _postgres_role(pid)
        if group is not None:
            by_group[group] = by_group.get(group, 0.0) + seconds
    busy, total = _machine()
    return CpuSnapshot(by_group, busy, total)

"""Summarise a py-spy raw (collapsed) profile: ``python -m bench.flame bench/out/profile-X.txt``.

Prints the share of samples spent inside each function (inclusive) and at each leaf (self),
top N of each, so a profile's conclusion can be read without a flame-graph viewer.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

__all__ = ["summarise"]


def _name(frame: str) -> str:
    """``func (path/to/module.py:12)`` → ``func (module.py)``: lines merged per function."""
    func, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{func} ({'/'.join(path.split('/')[-2:])})"


def summarise(text: str, *, top: int = 25) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(total samples, top inclusive functions, top leaf functions) of a collapsed profile."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_name(f) for f in stack.split(";") if f]
        for name in set(frames):
            inclusive[name] += n
        if frames:
            leaf[frames[-1]] += n
    return total, inclusive.most_common(top), leaf.most_common(top)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flame")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total, inclusive, leaf = summarise(args.profile.read_text(), top=args.top)
    print(f"{total:,} samples")
    for title, rows in (("inclusive", inclusive), ("self", leaf)):
        print(f"-- {title}")
        for name, n in rows:
            print(f"{n / max(total, 1):6.1%}  {name}")


if __name__ == "__main__":
    main()

"""docs/DESIGN.md's "Where is what" table names files that exist, and the document points at
nothing outside the repository (reads files only: no I/O beyond the checkout)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "DESIGN.md"
_PATH = re.compile(r"`((?:hexcast|streams|targeting|scheduler|sender|providersim|analysis|tests)"
                   r"/[\w./]*)`")


def _table() -> str:
    text = DESIGN.read_text()
    start = text.index("## Where is what")
    return text[start: text.index("\n## ", start + 1)]


def test_every_path_of_the_where_is_what_table_exists() -> None:
    paths = _PATH.findall(_table())
    assert len(paths) >= 30
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []


def test_the_table_answers_the_questions_newcomers_ask() -> None:
    table = _table().lower()
    for topic in ("visit enter", "campaign released", "consent", "quiet hours", "rate limits",
                  "failover", "twilio adapter"):
        assert topic in table


def test_design_points_at_nothing_outside_the_repository() -> None:
    text = DESIGN.read_text()
    assert "../" not in text
    for path in re.findall(r"`(/[\w./-]+)`", text):
        assert not path.startswith(("/work", "/tmp", "/home")), path

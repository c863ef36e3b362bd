"""docs/PROVIDERS.md lists every status word and error code each adapter maps, as
``hexcast providers codes`` prints them (reads files only)."""

from __future__ import annotations

from pathlib import Path

from sender.cli import code_table
from sender.providers import KINDS, adapter_module

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROVIDERS.md"


def test_the_document_holds_the_table_the_adapters_map() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("|")]
    assert rows == code_table()


def test_every_kind_has_a_table_with_its_final_statuses() -> None:
    """Every kind but the dry-run route, which posts no callbacks."""
    for kind in KINDS:
        table = adapter_module(kind).TABLE
        assert table.kind == kind
        if kind == "dryrun":
            assert not table.statuses
            continue
        finals = {s.value for s in table.statuses.values() if s.final}
        assert "delivered" in finals, kind
        assert finals & {"failed", "expired"}, kind

"""The provider simulator's ledger journal: a restarted simulator remembers what it accepted."""

from __future__ import annotations

from pathlib import Path

from providersim.config import SimConfig
from providersim.ledger import MessageIn, Sim


def _msg(ref: str, to: str = "+14155550100") -> MessageIn:
    return MessageIn(client_ref=ref, to=to, body="hi")


def test_a_new_simulator_on_the_same_file_has_the_ledger_and_dedupes_on_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    first = Sim(SimConfig(ledger_path=str(path)))
    sent = first.accept([_msg("a"), _msg("b", "+14155550101"), _msg("bad", "nope")])
    assert [r["status"] for r in sent] == ["accepted", "accepted", "rejected"]
    second = Sim(SimConfig(ledger_path=str(path)))  # the same file after a kill
    assert [r.ledger_item(extra=True) for r in second.records] == [
        r.ledger_item(extra=True) for r in first.records]
    again = second.accept([_msg("a"), _msg("c")])
    assert [r["duplicate"] for r in again] == [True, False]
    assert again[0]["provider_message_id"] == sent[0]["provider_message_id"]
    assert [r.seq for r in Sim(SimConfig(ledger_path=str(path))).records] == [1, 2, 3]


def test_a_line_cut_short_by_a_crash_is_skipped_and_reset_forgets(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    Sim(SimConfig(ledger_path=str(path))).accept([_msg("a")])
    with path.open("a") as fh:
        fh.write('{"seq": 2, "client_ref": "b", "to"')  # the write a SIGKILL cut
    sim = Sim(SimConfig(ledger_path=str(path)))
    assert [r.client_ref for r in sim.records] == ["a"]
    sim.accept([_msg("c")])
    assert [r.client_ref for r in Sim(SimConfig(ledger_path=str(path))).records] == ["a", "c"]
    sim.reset()
    assert not sim.records
    assert not path.exists()
    assert Sim(SimConfig(ledger_path=str(path))).records == []

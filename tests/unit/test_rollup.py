"""A message's outcome from its parts' receipts (``sender.rollup``), whatever their order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sender.providers.status import DeliveryStatus
from sender.rollup import PartReceipt, advances, outcome

D, F, E = DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.EXPIRED
A, S, U = DeliveryStatus.ACCEPTED, DeliveryStatus.SENT, DeliveryStatus.UNKNOWN


def _parts(*statuses: DeliveryStatus) -> list[PartReceipt]:
    return [PartReceipt(part=n + 1, parts=len(statuses), status=s) for n, s in enumerate(statuses)]


def test_delivered_only_when_every_part_is() -> None:
    assert outcome(_parts(D, D, D)) == (D, None)
    assert outcome(_parts(D, D)[:1] + [PartReceipt(part=2, parts=2, status=S)]) is None
    assert outcome([PartReceipt(part=1, parts=3, status=D)]) is None  # parts 2 and 3 not heard of


def test_the_first_failed_part_decides_at_once() -> None:
    parts = _parts(D, F, S)
    assert outcome(parts) == (F, parts[1])


def test_an_expired_part_expires_the_message_unless_another_failed() -> None:
    assert outcome(_parts(D, E))[0] is E  # type: ignore[index]
    assert outcome(_parts(E, F))[0] is F  # type: ignore[index]


def test_an_unknown_part_leaves_it_open() -> None:
    assert outcome(_parts(D, U)) is None


def test_statuses_only_move_forward() -> None:
    assert advances(None, A)
    assert advances(A, S)
    assert advances(S, D)
    assert advances(A, F)
    assert not advances(S, A)
    assert not any(advances(final, new) for final in (D, F, E, U) for new in DeliveryStatus)


def _latest(history: list[PartReceipt]) -> list[PartReceipt]:
    """What the store keeps of a history of callbacks: each part's latest forward move."""
    kept: dict[int, PartReceipt] = {}
    for r in history:
        old = kept.get(r.part)
        if old is None or advances(old.status, r.status):
            kept[r.part] = r
    return list(kept.values())


_part_histories = st.integers(1, 4).flatmap(lambda n: st.lists(
    st.tuples(st.integers(1, n), st.sampled_from([A, S, D, D, F, E])), min_size=1, max_size=12,
).map(lambda items: [PartReceipt(part=p, parts=n, status=s) for p, s in items]))


@given(history=_part_histories, seed=st.randoms())
def test_duplicates_and_reordering_of_final_receipts_change_nothing(history, seed) -> None:  # type: ignore[no-untyped-def]
    """Receipts of one part in any order give the same outcome when each part has one final
    status (the provider's real sequence); replays of a callback change nothing."""
    finals = {r.part: r for r in history if r.status.final}
    real = [r for r in history if not r.status.final or finals[r.part] is r]
    shuffled = real + real[: len(real) // 2]  # duplicated callbacks
    seed.shuffle(shuffled)
    decided = outcome(_latest(real))
    again = outcome(_latest(shuffled))
    assert (decided and decided[0]) == (again and again[0])

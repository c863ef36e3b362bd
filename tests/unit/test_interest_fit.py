"""The matcher's interest score, by set lookups, against the pairwise definition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from targeting.service import GENERIC_SCORE, InterestFit, Wanted, fit_score


def pairwise_score(wanted: list[str], weights: dict[str, float], have: list[str]) -> float:
    """The definition: full weight for a user interest equal to or below the promotion's, half
    per level for one above it; the best over all pairs."""
    if not wanted:
        return GENERIC_SCORE
    best = 0.0
    for w in wanted:
        weight = weights.get(w, 1.0)
        for h in have:
            if h == w or h.startswith(w + "/"):
                best = max(best, weight)
            elif w.startswith(h + "/"):
                best = max(best, weight * 0.5 ** (w.count("/") - h.count("/")))
    return best


_interest = st.lists(st.sampled_from(["a", "b", "ab", "c"]), min_size=1, max_size=4).map("/".join)


@settings(max_examples=400, deadline=None)
@given(wanted=st.lists(_interest, max_size=4, unique=True),
       have=st.lists(_interest, max_size=5),
       weights=st.dictionaries(_interest, st.sampled_from([0.5, 1.0, 2.0, 3.0]), max_size=3))
def test_fit_score_is_the_pairwise_score(wanted: list[str], have: list[str],
                                         weights: dict[str, float]) -> None:
    weights = {k: v for k, v in weights.items() if k in wanted}
    assert fit_score(Wanted.of(wanted, weights), InterestFit.of(have)) == pairwise_score(
        wanted, weights, have)


def test_levels_and_siblings() -> None:
    fit = InterestFit.of(["electronics"])
    assert fit_score(Wanted.of(["electronics/phones/android"], {}), fit) == 0.25
    assert fit_score(Wanted.of(["electronicsx"], {}), fit) == 0.0  # a name prefix is no parent
    below = InterestFit.of(["electronics/phones"])
    assert fit_score(Wanted.of(["electronics"], {"electronics": 3.0}), below) == 3.0
    assert fit_score(Wanted.of([], {}), InterestFit.of([])) == GENERIC_SCORE

"""A paced run's window: the scheduler's chunk size and what a paced grant waits for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scheduler.service import chunk_size
from sender.grants import window


@given(st.lists(st.integers(1, 10), min_size=1, max_size=1000), st.floats(1, 5000),
       st.integers(1, 1000))
def test_a_window_is_the_longest_head_that_fits(sizes: list[int], burst: float, most: int) -> None:
    got = window(sizes, burst, most)
    heads = [sum(sizes[:n]) for n in range(1, min(len(sizes), most) + 1)]
    assert got in heads  # whole messages, at most ``most`` of them
    fitting = [h for h in heads if h <= burst]
    assert got == (max(fitting) if fitting else sizes[0])  # the first message goes whatever it costs


def test_a_window_examples() -> None:
    assert window([1] * 1000, 800.0, 1000) == 800  # 800/s: a second's worth a call
    assert window([2] * 1000, 800.0, 1000) == 800  # 400 two-segment messages
    assert window([1] * 1000, 5000.0, 500) == 500  # the route's batch size bounds it
    assert window([3, 1], 2.0, 10) == 3  # a message is never split


@given(st.floats(0.01, 100_000), st.integers(1, 1000))
def test_chunks_are_whole_windows_of_a_slower_run(rate: float, most: int) -> None:
    size, paced = chunk_size(rate, most)
    window = max(1, int(rate))  # one second of the rate
    assert 1 <= size <= most
    if window >= most:
        assert (size, paced) == (most, False)
    else:
        assert paced
        assert size % window == 0  # whole windows: a call each
        assert size // window == min(4, most // window)


def test_chunk_size_examples() -> None:
    assert chunk_size(14.0, 1000) == (56, True)  # four windows
    assert chunk_size(300.0, 1000) == (900, True)  # three fit
    assert chunk_size(800.0, 1000) == (800, True)  # one
    assert chunk_size(1000.0, 1000) == (1000, False)  # a full chunk a second: sliced as usual
    assert chunk_size(0.1, 1000) == (4, True)

"""Circuit breaker transitions: closed → open → half-open → closed/open."""

from __future__ import annotations

from sender.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_recovers_through_one_trial() -> None:
    clock, seen = Clock(), []
    breaker = CircuitBreaker("a", failures=3, open_s=10, clock=clock,
                             on_change=lambda n, old, new: seen.append((n, old, new)))
    breaker.failure()
    breaker.success()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == 10
    clock.now = 10.0
    assert breaker.allow()  # the one trial
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # no second call while the trial runs
    breaker.success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert [(old.value, new.value) for _, old, new in seen] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "closed"),
    ]


def test_failed_trial_opens_again_for_a_full_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker("b", failures=1, open_s=5, clock=clock)
    breaker.failure()
    clock.now = 5.0
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is BreakerState.OPEN
    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.allow()

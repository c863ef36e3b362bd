"""``call_each``, the loop every adapter sends through: concurrency, stopping after a failure,
results in order, and which failure speaks for the messages without an answer."""

from __future__ import annotations

import asyncio

import pytest

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from sender.providers.base import ProviderResult, call_each


def refused(text: str) -> ProviderError:
    error = ProviderError(text)
    error.retryable = False
    return error


async def test_results_come_in_the_items_order_with_at_most_concurrency_in_flight() -> None:
    in_flight, most = 0, 0

    async def call(n: int) -> ProviderResult | list[ProviderResult]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001 * (10 - n))  # the later ones answer first
        in_flight -= 1
        ok = ProviderResult(f"m{n}", True, f"p{n}")
        return [ok, ProviderResult(f"m{n}b", False, None, "x")] if n % 2 else ok

    report = await call_each(range(10), call, concurrency=3)
    assert report.failure is None
    assert most == 3
    assert [r.client_ref for r in report.results][:5] == ["m0", "m1", "m1b", "m2", "m3"]
    assert len(report.results) == 15


async def test_no_call_starts_after_a_failure() -> None:
    started: list[int] = []

    async def call(n: int) -> ProviderResult:
        started.append(n)
        await asyncio.sleep(0)
        if n == 2:
            raise ProviderUnavailable("HTTP 503")
        return ProviderResult(f"m{n}", True, f"p{n}")

    report = await call_each(list(range(20)), call, concurrency=2)
    assert isinstance(report.failure, ProviderUnavailable)
    assert started == [0, 1, 2, 3]  # 3 was in flight when 2 failed
    assert [r.client_ref for r in report.results] == ["m0", "m1", "m3"]


ambiguous = ProviderUnavailable("read timeout", ambiguous=True)
limited = ProviderRateLimited("429", retry_after=2.0)
outage = ProviderUnavailable("HTTP 503")
refusal = refused("HTTP 401")


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ((limited, ambiguous), ambiguous),  # resending could send twice: never resent blindly
        ((ambiguous, limited), ambiguous),
        ((outage, limited), limited),
        ((refusal, outage), outage),
        ((outage, refusal), outage),
        ((refusal, refused("HTTP 403")), refusal),  # the first of equals
    ],
)
async def test_the_gravest_failure_speaks_for_the_unanswered(
    failures: tuple[ProviderError, ProviderError], expected: ProviderError,
) -> None:
    async def call(n: int) -> ProviderResult:
        await asyncio.sleep(0.001 * n)  # in flight together, failing in the items' order
        raise failures[n]

    report = await call_each([0, 1], call, concurrency=2)
    assert report.results == []
    assert report.failure is expected


async def test_no_items_no_calls() -> None:
    async def call(n: int) -> ProviderResult:
        raise AssertionError("called")

    report = await call_each([], call, concurrency=4)
    assert (report.results, report.failure) == ([], None)

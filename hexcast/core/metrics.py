"""Each process's Prometheus metrics: kept in process, served on the process's own port.

Domains declare their metrics in their ``metrics.py`` with ``prometheus_client`` (module-level
``Counter``/``Histogram``/``Gauge`` in the default registry, as the library intends) and count
where the work happens. A scrape reads those in-memory values and nothing else: no query on
PostgreSQL or Redis runs per scrape. Gauges a process knows only by asking (a dead-letter
depth, a webhook backlog, a consumer lag) are refreshed by that process on a timer, with
:func:`refresh_every`, and a scrape reads the last value.

Label values are short strings: a tenant's id, a lane, a route's name, a state, a reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from prometheus_client import Gauge, Info, start_http_server

from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings

__all__ = ["PROCESS_INFO", "UP_SINCE", "RefreshedGauge", "refresh_every", "serve_metrics"]

_log = get_logger(__name__)

PROCESS_INFO = Info("hexcast_process", "Which hexcast process this is")
UP_SINCE = Gauge("hexcast_process_started_timestamp_seconds",
                 "When this hexcast process started (unix seconds)")


def serve_metrics(settings: Settings, *, process: str) -> int | None:
    """Serve this process's ``/metrics`` on ``settings.metrics_port`` (a daemon thread), if
    set; returns the port. Also labels the process (``hexcast_process_info``)."""
    PROCESS_INFO.info({"process": process})
    UP_SINCE.set_to_current_time()
    if settings.metrics_port is None:
        return None
    start_http_server(settings.metrics_port, addr=settings.metrics_host)
    _log.info("metrics_serving", process=process, port=settings.metrics_port)
    return settings.metrics_port


async def refresh_every(interval_s: float, refresh: Callable[[], Awaitable[None]], *,
                        name: str) -> None:
    """Run ``refresh`` every ``interval_s`` until cancelled; a failed refresh is logged and
    the gauges keep their last values (a scrape never waits on it)."""
    while True:
        try:
            await refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a gauge refresh never stops its process
            _log.warning("metrics_refresh_failed", gauge=name, error=repr(exc))
        await asyncio.sleep(interval_s)


Labels = TypeVar("Labels", bound=tuple[str, ...])


class RefreshedGauge:
    """A labelled gauge whose series a refresh replaces all at once: :meth:`replace` sets the
    given series and removes those the last refresh set and this one does not (a finished
    campaign, a consumer group gone), so a scrape never shows a stale series."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self._labels: set[tuple[str, ...]] = set()

    def replace(self, values: Mapping[Labels, float]) -> None:
        for labels, value in values.items():
            self.gauge.labels(*labels).set(value)
        for gone in self._labels - values.keys():
            self.gauge.remove(*gone)
        self._labels = set(values)

"""A no-op faust agent, the matcher's ceiling: ``python -m bench.noop`` (settings from HEXCAST_*).

Same app factory and topic shape as the matcher: consumes ``visits`` and re-produces every
record unchanged to ``bench.noop``, awaiting each send as the matcher does. Its consumer group
is ``<app_id>-noop``; the bench creates the output topic first.
"""

from __future__ import annotations

from typing import Any

from hexcast.core.faustapp import create_faust_app, raw_topic, run_worker
from hexcast.core.logging import configure_logging
from hexcast.core.settings import load_settings

__all__ = ["OUT_TOPIC", "main"]

OUT_TOPIC = "bench.noop"


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    app = create_faust_app(settings, role="noop")
    visits = raw_topic(app, settings, "visits")
    out = raw_topic(app, settings, OUT_TOPIC)

    async def passthrough(stream: Any) -> None:
        async for key, value in stream.items():
            await out.send(key=key, value=value)

    app.agent(visits, name="noop")(passthrough)
    run_worker(app, loglevel="warning")


if __name__ == "__main__":
    main()

"""`python -m bench holiday --recipients N --senders 1,2` (see BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.table import Table

from bench.common import machine, throwaway_database
from bench.holiday import run_holiday
from hexcast.broker import EmbeddedBroker
from hexcast.logging import configure_logging

console = Console()


async def _holiday(broker_url: str, recipients: int, senders: int, receipts: bool) -> None:
    async with throwaway_database() as dsn:
        result = await asyncio.to_thread(run_holiday, broker_url, dsn, recipients=recipients,
                                         senders=senders, receipts=receipts)
    table = Table(title=f"holiday: {recipients:,} recipients, {senders} sender process(es)")
    for column in ("recipients/s", "wall s", "release s", "accepted", "dup", "resubmitted",
                   "states", "peak RSS MB"):
        table.add_column(column)
    table.add_row(f"{result.rate:,.0f}", f"{result.wall_s:.1f}", f"{result.release_s:.1f}",
                  f"{result.accepted:,}", str(result.duplicates), str(result.resubmissions),
                  str(result.states), ", ".join(f"{k} {v:.0f}" for k, v in result.rss_mb.items()))
    console.print(table)
    console.print("exactly once:", result.exactly_once)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="scenario", required=True)
    holiday = sub.add_parser("holiday", help="scenario 1: recipient-local bulk campaign")
    holiday.add_argument("--recipients", type=int, default=100_000)
    holiday.add_argument("--senders", default="1", help="comma-separated sender process counts")
    holiday.add_argument("--receipts", action="store_true", help="post delivery receipts too")
    args = parser.parse_args()
    configure_logging("warning")
    console.print(machine())
    with EmbeddedBroker() as broker:
        for senders in (int(s) for s in args.senders.split(",")):
            asyncio.run(_holiday(broker.url, args.recipients, senders, args.receipts))


if __name__ == "__main__":
    main()

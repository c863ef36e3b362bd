"""Operator commands of the sender: ``hexcast dlq list|show|replay``, ``hexcast deferred release``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from hexcast.core.settings import get_settings

__all__ = ["deferred_app", "dlq_app"]

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters of the sender (send.dlq).")
deferred_app = typer.Typer(no_args_is_help=True, help="Messages deferred by quiet hours.")


@deferred_app.command("release")
def deferred_release() -> None:
    """Requeue every deferred message whose time has come, once."""
    from hexcast.core.bus import Bus
    from hexcast.core.db import connect_pool
    from sender.deferred import release_due

    settings = get_settings()

    async def run() -> int:
        pool = await connect_pool(settings.database_url, max_size=2)
        bus = Bus(settings)
        await bus.start()
        try:
            return await release_due(pool, bus, settings, now=datetime.now(UTC))
        finally:
            await bus.stop()
            await pool.close()

    typer.echo(f"released: {asyncio.run(run())}")


@dlq_app.command("list")
def dlq_list(limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50) -> None:
    """The dead letters, oldest first: offset, key, reason."""
    from sender.dlq import read_dead_letters

    for offset, letter in asyncio.run(read_dead_letters(get_settings(), limit=limit)):
        typer.echo(f"{offset}\t{letter.key}\t{letter.at.isoformat()}\t{letter.reason[:120]}")


@dlq_app.command("show")
def dlq_show(offset: Annotated[int, typer.Argument(min=0)]) -> None:
    """One dead letter in full, with its original payload."""
    from sender.dlq import read_dead_letters

    found = [d for o, d in asyncio.run(read_dead_letters(get_settings(), limit=offset + 1))
             if o == offset]
    if not found:
        raise typer.BadParameter(f"no dead letter at offset {offset}")
    typer.echo(found[0].model_dump_json(indent=2))


@dlq_app.command("replay")
def dlq_replay(
    offset: Annotated[int | None, typer.Argument(min=0, help="One letter; all when omitted")] = None,
) -> None:
    """Send dead letters again: failed messages are requeued, and the sender re-checks consent,
    opt-out, quiet hours and dedupe before anything goes out."""
    from sender.dlq import replay

    count = asyncio.run(replay(get_settings(), offset=offset))
    typer.echo(f"replayed: {count} messages")

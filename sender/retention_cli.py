"""``hexcast messages prune``: delete the message log's old final messages now (the scheduler
does it every ``message_retention_every_s``)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from hexcast.core.settings import Settings, get_settings
from sender.retention import Pruned

__all__ = ["messages_app"]

messages_app = typer.Typer(no_args_is_help=True, help="The message log.")


async def _prune(settings: Settings, *, days: int, actor: str) -> Pruned:
    from hexcast.core.db import connect_pool
    from hexcast.core.operator_log import record
    from sender.retention import prune_messages

    pool = await connect_pool(settings.database_url, max_size=1)
    try:
        pruned = await prune_messages(pool, older_than_days=days,
                                      batch=settings.message_retention_batch)
        async with pool.acquire() as conn:
            await record(conn, actor=actor, action="messages.prune", target="messages",
                         reason=f"retention: final messages older than {days} days",
                         detail={"messages": pruned.messages, "batches": len(pruned.batches),
                                 "dependants": pruned.dependants})
        return pruned
    finally:
        await pool.close()


@messages_app.command("prune")
def messages_prune(
    older_than_days: Annotated[int | None, typer.Option(
        min=1, max=36_500, help="Age in days (default HEXCAST_MESSAGE_RETENTION_DAYS)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete delivered, failed, expired and suppressed messages older than the retention (with
    their events, provider parts and receipts, short links and clicks), in batches of
    HEXCAST_MESSAGE_RETENTION_BATCH; prints how many went. Recorded in the operator audit log."""
    from hexcast.core.operator_log import cli_actor

    settings = get_settings()
    days = older_than_days or settings.message_retention_days
    if not yes:
        typer.confirm(f"delete final messages older than {days} days?", abort=True)
    pruned = asyncio.run(_prune(settings, days=days, actor=cli_actor()))
    typer.echo(f"deleted {pruned.messages} messages and {pruned.dependants} rows keyed by them"
               f" in {len(pruned.batches)} batches")

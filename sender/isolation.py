"""Poison isolation in the sender: a message that cannot be sent costs only itself.

Records are screened message by message (:meth:`SendBatch.screen`); a group of records goes
through :meth:`Dispatcher.handle_many` as one, and if that raises (a foreign key, a number out
of a column's range: what the screen cannot know), the group's messages are retried in halves
(:func:`hexcast.core.isolation.isolate`). A retry is safe: the enqueue dedupes on the message key
and a row already past ``queued`` is not sent again (``sending`` rows go to reconciliation, as
for any redelivery). Each dead letter holds a record of only the messages that failed, for one
reason, so ``hexcast dlq replay`` replays just those.
"""

from __future__ import annotations

from collections.abc import Sequence

from hexcast.core.deadletter import Letter, screen_all
from hexcast.core.isolation import Failed, isolate
from hexcast.core.logging import get_logger
from sender.dispatch import Dispatcher
from sender.journal import until_up
from sender.models import SendBatch, SendRequest
from sender.outcome import Outcome

__all__ = ["Taken", "screen_records", "send_isolated"]

log = get_logger("hexcast.sender")

Taken = tuple[bytes | None, SendBatch]
"""A record's key and its valid messages."""


def screen_records(records: Sequence[tuple[bytes | None, bytes]]) -> tuple[list[Taken], list[Letter]]:
    """The valid part of each record, and a letter per message (or record) refused."""
    return screen_all(SendBatch, records, what="invalid send request")


async def send_isolated(dispatcher: Dispatcher, taken: list[Taken]) -> tuple[Outcome, list[Letter]]:
    """Send the records' messages as one group; returns the outcome and the letters of the
    messages that failed for good or failed the group on their own. When nothing fails this
    is one :meth:`Dispatcher.handle_many`, as before. A PostgreSQL or Redis outage that
    reaches this far is nobody's fault: the group waits for them and runs again (deduped), it
    is never dead-lettered for it."""
    try:
        outcome = await until_up(lambda: dispatcher.handle_many([batch for _, batch in taken]))
        return outcome, _letters(taken, outcome, []) if outcome.dead else []
    except Exception as exc:  # noqa: BLE001 - found item by item below
        log.exception("send_group_failed", records=len(taken))
        tried = exc

    async def run(group: list[tuple[int, SendRequest]]) -> Outcome:
        return await until_up(lambda: dispatcher.handle_many(_regroup(taken, group)))

    units = [(n, item) for n, (_, batch) in enumerate(taken) for item in batch.items]
    outcomes, failed = await isolate(units, run, log=log, event="send_group_failed", tried=tried)
    outcome = Outcome.merged(outcomes)
    return outcome, _letters(taken, outcome, failed)


def _letters(
    taken: list[Taken], outcome: Outcome, failed: list[Failed[tuple[int, SendRequest]]]
) -> list[Letter]:
    """One letter per record and reason, holding only the messages that failed for it (a
    poison message is alone in its letter; a failure of every message, such as a broken
    script, still makes one letter per record)."""
    alone: dict[tuple[int, str], list[SendRequest]] = {}
    for (n, item), why in failed:
        alone.setdefault((n, why), []).append(item)
    dead = {(n, f"failed on its own: {why} (message {', '.join(i.message_key for i in items)})"):
            items for (n, why), items in alone.items()}
    for n, (_, batch) in enumerate(taken):
        for item in batch.items:
            if item.message_key in outcome.dead:
                dead.setdefault((n, outcome.dead[item.message_key]), []).append(item)
    return [Letter(taken[n][0], taken[n][1].model_copy(update={"items": items}).encode(), reason)
            for (n, reason), items in dead.items()]


def _regroup(taken: list[Taken], units: list[tuple[int, SendRequest]]) -> list[SendBatch]:
    """The records of ``units`` (record index, message), each with only those messages."""
    items: dict[int, list[SendRequest]] = {}
    for n, item in units:
        items.setdefault(n, []).append(item)
    return [taken[n][1].model_copy(update={"items": group}) for n, group in items.items()]

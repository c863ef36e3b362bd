"""Applying a provider's delivery receipts: one bad receipt costs only itself.

A receipt the request model refuses (:attr:`sender.models.ReceiptBatch.refused`) and one the
statement fails on alone (found by retrying the statement in halves: applying a receipt twice
changes nothing, final states stay final) are dead-lettered on ``send.dlq``, each as a batch
holding only that receipt; the others are applied. A PostgreSQL outage fails the request, so
the provider retries it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hexcast.core.bus import Bus
from hexcast.core.db import PG_OUTAGES
from hexcast.core.deadletter import dead_letter
from hexcast.core.isolation import isolate
from hexcast.core.logging import get_logger
from sender import metrics, repo
from sender.models import DeliveryEvent, Lane, MessageState

__all__ = ["DLR_SOURCE", "apply_receipts", "dead_letter_receipts", "receipt_events"]

log = get_logger("hexcast.sender")
DLR_SOURCE = "POST /v1/webhooks/dlr"
"""The ``source_topic`` of a receipt's dead letter."""
Receipt = tuple[str, str, str | None]


async def apply_receipts(
    pool: asyncpg.Pool, bus: Bus, receipts: list[Receipt], *, actor: str
) -> list[asyncpg.Record]:
    """:func:`sender.repo.apply_receipts` in one statement when none fails; the receipts it
    fails on alone are dead-lettered. Returns the messages that changed."""
    async def run(group: list[Receipt]) -> list[asyncpg.Record]:
        async with pool.acquire() as conn:
            return await repo.apply_receipts(conn, receipts=group, actor=actor)

    changed, failed = await isolate(receipts, run, log=log, event="receipts_failed",
                                    passthrough=PG_OUTAGES)
    for group in changed:
        metrics.count_receipts(group)
    await dead_letter_receipts(bus, [({"client_ref": ref, "status": status, "error": error},
                                      f"receipt for {ref!r} not applied: {why}")
                                     for (ref, status, error), why in failed])
    return [row for group in changed for row in group]


async def dead_letter_receipts(bus: Bus, refused: Sequence[tuple[Any, str]]) -> None:
    """A letter per refused receipt (as posted, and why), holding a batch of only it."""
    if not refused:
        return
    for _, why in refused:
        log.error("dead_letter", source=DLR_SOURCE, reason=why[:300])
    metrics.count_letters("", (why for _, why in refused))
    await bus.publish_many("send.dlq", [
        ("dlr", dead_letter(DLR_SOURCE, b"dlr", why, json.dumps({"receipts": [item]}, default=str).encode()))
        for item, why in refused
    ])


def receipt_events(changed: Sequence[asyncpg.Record]) -> list[DeliveryEvent]:
    """The delivery events of messages a receipt moved (rows of ``repo.apply_receipts``)."""
    now = datetime.now(UTC)
    return [
        DeliveryEvent(message_key=c["message_key"], tenant_id=c["tenant_id"], lane=Lane(c["lane"]),
                      state=MessageState(c["state"]), reason=c["error"] or "delivery receipt",
                      promotion_id=c["promotion_id"], campaign_run_id=c["campaign_run_id"],
                      user_id=c["user_id"], phone=c["phone"], at=now)
        for c in changed
    ]

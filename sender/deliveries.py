"""What an SMPP route delivers over its binds, kept: receipts settle their messages (as a
provider's HTTP callback would, ``sender.settle``) and replies go to the tenants they answer
(``sender.replies``). The SMSC is answered only after this returns, so nothing is lost to a
crash in between: it delivers them again, and both paths are idempotent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from hexcast.core.bus import Bus
from hexcast.core.logging import get_logger
from sender import dlr, inbound_repo, settle
from sender.models import DeliveryEvent, ProviderSpec
from sender.providers import Receipt, error_table
from sender.providers.base import Deliveries, Reply
from sender.replies import publish_confirmation, take_reply

__all__ = ["route_deliveries"]

log = get_logger("hexcast.sender")


def route_deliveries(
    spec: ProviderSpec, pool: asyncpg.Pool, bus: Bus,
    publish: Callable[[list[DeliveryEvent]], Awaitable[None]],
) -> Deliveries:
    """The :data:`Deliveries` of route ``spec``."""
    table = error_table(spec.kind)
    actor = f"{spec.name}-smpp"

    async def keep(receipts: list[Receipt], replies: list[Reply]) -> None:
        if receipts:
            async with pool.acquire() as conn:
                kept = await settle.keep(conn, provider=spec.name, table=table, receipts=receipts)
                changed = await settle.settle(conn, keys=kept.keys, unplaced=kept.unplaced,
                                              actor=actor)
            if changed:
                await publish(dlr.receipt_events(changed))
        for reply in replies:
            await _reply(spec, pool, bus, reply)

    return keep


async def _reply(spec: ProviderSpec, pool: asyncpg.Pool, bus: Bus, reply: Reply) -> None:
    """A reply counts for every tenant the route serves that has the number as a recipient
    (a route's ``tenants``, else any): a STOP to a shared number stops them all."""
    async with pool.acquire() as conn:
        tenants: Sequence[int] = await inbound_repo.tenants_of(
            conn, phone=reply.phone, among=spec.tenants)
        for tenant_id in tenants:
            taken = await take_reply(conn, tenant_id=tenant_id, phone=reply.phone,
                                     body=reply.body, provider_ref=reply.ref)
            if taken is not None and taken.confirmation is not None:
                await publish_confirmation(bus, taken.confirmation)
    if not tenants:
        log.warning("smpp_reply_without_tenant", route=spec.name, to=reply.to)

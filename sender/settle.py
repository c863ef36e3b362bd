"""Provider receipts (Twilio, Vonage, Plivo, Sinch, Telnyx callbacks) applied to messages.

A callback's receipts are kept per message part (``sender.receipts_repo``); a message is
settled once its parts decide it (``sender.rollup``) and the message is known: by our client
reference when the callback carries it, else by the provider's message id, which exists only
once the acceptance is committed. A receipt that came first waits, and the sender settles it
right after the acceptance. A part the carrier refused because the recipient unsubscribed there
(:attr:`ErrorClass.OPTED_OUT`) records an opt-out for the tenant. Applying is idempotent: final
states stay final, so a retried callback or a second settle changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from hexcast.core.db import Conn
from hexcast.core.logging import get_logger
from sender import metrics, receipts_repo, repo
from sender.providers import Receipt, StatusTable
from sender.providers.status import DeliveryStatus, ErrorClass
from sender.receipts_repo import Stored, Target
from sender.rollup import PartReceipt, outcome

__all__ = ["Kept", "keep", "settle"]

log = get_logger("hexcast.sender")
Decided = dict[tuple[str, str, bool], tuple[DeliveryStatus, PartReceipt | None]]


class Kept(NamedTuple):
    """What :func:`keep` stored: the (provider, ref) keys its receipts name, and those of them
    kept under a part's own id because that part was not placed yet."""

    keys: list[tuple[str, str]]
    unplaced: list[tuple[str, str]]


async def keep(conn: Conn, *, provider: str, table: StatusTable, receipts: Sequence[Receipt]
               ) -> Kept:
    """Store a callback's receipts.

    A receipt naming a part by its own id is placed by the part ids kept at acceptance; one
    that came before them waits under that id (``receipts_repo.rekey`` moves it)."""
    part_ids = [r.provider_message_id for r in receipts if r.by_part_id]
    found = await receipts_repo.places(conn, provider=provider, part_ids=part_ids)
    stored = [_stored(r, table, found.get(r.provider_message_id)) for r in receipts]
    if stored:
        await receipts_repo.store(conn, provider=provider, receipts=stored)
    unplaced = {(provider, i) for i in part_ids if i not in found}
    keys = list(dict.fromkeys((provider, s.ref) for s in stored))
    return Kept(keys, [k for k in keys if k in unplaced])


def _stored(r: Receipt, table: StatusTable, place: tuple[str, int, int] | None) -> Stored:
    error = None if r.status is DeliveryStatus.DELIVERED else table.error(r.code)
    if place is not None:
        key, part, parts = place
        return Stored(ref=key, by_ref=True, receipt=PartReceipt(
            part=part, parts=parts, status=r.status, code=r.code, error_class=error))
    by_ref = r.client_ref is not None and not r.by_part_id
    return Stored(ref=r.client_ref if by_ref and r.client_ref else r.provider_message_id,
                  by_ref=by_ref, receipt=PartReceipt(
                      part=r.part, parts=r.parts, status=r.status, code=r.code, error_class=error))


async def settle(
    conn: Conn, *, keys: Sequence[tuple[str, str]] = (), refs: Sequence[str] = (), actor: str,
    unplaced: Sequence[tuple[str, str]] = (),
) -> list[asyncpg.Record]:
    """Apply the waiting receipts of the messages named by ``keys`` (provider, ref) or
    ``refs`` (any provider) that are decided and known; returns the messages that changed.

    ``unplaced`` (of :class:`Kept`): receipts kept under a part's id, moved to their message
    if the acceptance placed that part meanwhile (it committed between ``keep``'s lookup and
    its store, so its own move did not see them)."""
    if unplaced:
        keys = [*keys, *await receipts_repo.rekey(conn, keys=unplaced)]
    found = await receipts_repo.waiting(conn, keys=keys, refs=refs)
    decided: Decided = {}
    for key, parts in found.items():
        result = outcome(parts)
        if result is not None:
            decided[key] = result
    if not decided:
        return []
    by_key, by_id = await receipts_repo.targets(
        conn, message_keys=[k[1] for k in decided if k[2]],
        provider_ids=[k[1] for k in decided if not k[2]])
    applying: list[tuple[str, str, str | None]] = []
    opted_out: list[tuple[int, str]] = []
    done: list[tuple[str, str]] = []
    codes: dict[str, str] = {}  # message key → the provider's own code, for the metrics
    for (provider, ref, by_ref), (status, part) in decided.items():
        target: Target | None = (by_key if by_ref else by_id).get(ref)
        if target is None:
            continue  # its message is not known yet: it waits for the acceptance
        applying.append((target.message_key, status.value, _why(provider, part)))
        if part is not None:
            codes[target.message_key] = part.code or part.status.value
        if part is not None and part.error_class is ErrorClass.OPTED_OUT:
            opted_out.append((target.tenant_id, target.phone))
        done.append((provider, ref))
    changed = await repo.apply_receipts(conn, receipts=applying, actor=actor)
    metrics.count_receipts(changed, codes=codes)
    metrics.count_optouts(await receipts_repo.record_carrier_opt_outs(conn, recipients=opted_out))
    await receipts_repo.mark_applied(conn, keys=done)
    if opted_out:
        log.info("carrier_opt_outs", count=len(opted_out))
    return changed


def _why(provider: str, part: PartReceipt | None) -> str | None:
    if part is None:
        return None
    cls = part.error_class.value if part.error_class else "failed"
    where = f" (part {part.part} of {part.parts})" if part.parts > 1 else ""
    return f"{provider}: {part.code or part.status.value} {cls}{where}"

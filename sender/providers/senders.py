"""Which of a route's numbers a message comes from (a number pool with sticky senders). Pure.

A route names one ``sender_id`` or a ``sender_pool``. From a pool each recipient always gets the
same number, so a reply (STOP, a question) goes back to the number the recipient knows and a
conversation stays on one thread of their phone. The pick is a jump consistent hash (Lamping &
Veach, 2014) of a BLAKE2b digest of the recipient's digits: stable across processes and
restarts (Python's ``hash()`` is salted per process), even over the pool, and when numbers are
appended to the end of a pool only the recipients the new numbers take move; removing or
reordering numbers moves most recipients.
"""

from __future__ import annotations

import hashlib

from sender.models import ProviderSpec
from sender.providers.base import Outgoing

__all__ = ["pick_sender", "pool_index"]

_MASK = (1 << 64) - 1
_LCG = 2862933555777941757  # the jump hash's 64-bit linear congruential step


def _key(to: str) -> int:
    """The recipient's digits (whatever the formatting: ``+1 312…`` and ``1312…`` alike) as a
    64-bit key."""
    digits = "".join(c for c in to if c.isdigit()).encode()
    return int.from_bytes(hashlib.blake2b(digits, digest_size=8).digest(), "big")


def pool_index(to: str, size: int) -> int:
    """The index in ``[0, size)`` of recipient ``to``'s number in a pool of ``size``."""
    if size < 1:
        raise ValueError(f"a pool of {size} numbers")
    key, bucket, jump = _key(to), -1, 0
    while jump < size:
        bucket = jump
        key = (key * _LCG + 1) & _MASK
        jump = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


def pick_sender(spec: ProviderSpec, msg: Outgoing) -> str | None:
    """The number or id ``msg`` comes from on route ``spec``: the tenant's own sender id when
    the dispatcher set one (only on routes with ``tenant_senders``), else the route's pool's
    number for its recipient, else its ``sender_id``; None when there is none (the messaging
    service or profile chooses)."""
    if msg.sender:
        return msg.sender
    if spec.sender_pool:
        return spec.sender_pool[pool_index(msg.to, len(spec.sender_pool))]
    return spec.sender_id

"""Message search: by phone number, message key or client reference, each found message with
the provider's raw status and code and its whole history (the message API's own reads,
``sender.list_messages`` / ``one_message`` / ``message_histories``: index range reads)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from hexcast.console import queries
from hexcast.core.db import Conn
from sender import MessageFilter, list_messages, message_histories, one_message

__all__ = ["LIMIT", "Found", "By", "search"]

LIMIT = 25
By = Literal["auto", "phone", "key", "reference"]
_PHONE = re.compile(r"^\+?[0-9]{6,16}$")


@dataclass(frozen=True, slots=True)
class Found:
    tenant_id: int
    message: Any  # a row of sender.message_list (provider_status, provider_code, ...)
    events: list[Any]


def _kind(text: str, by: By) -> By:
    if by != "auto":
        return by
    return "phone" if _PHONE.match(text.replace(" ", "").replace("-", "")) else "key"


async def _tenants(conn: Conn, tenant_id: int | None) -> list[int]:
    return [tenant_id] if tenant_id is not None else await queries.tenant_ids(conn)


async def _by_key(conn: Conn, key: str, tenant_id: int | None) -> list[tuple[int, Any]]:
    owner = tenant_id if tenant_id is not None else await queries.message_tenant(conn, message_key=key)
    row = None if owner is None else await one_message(conn, tenant_id=owner, message_key=key)
    return [] if row is None or owner is None else [(owner, row)]


async def _by_filter(conn: Conn, where: MessageFilter, tenant_id: int | None
                     ) -> list[tuple[int, Any]]:
    rows: list[tuple[int, Any]] = []
    for tenant in await _tenants(conn, tenant_id):
        found = await list_messages(conn, tenant_id=tenant, where=where, after_id=0,
                                    limit=LIMIT - len(rows))
        rows += [(tenant, r) for r in found]
        if len(rows) >= LIMIT:
            break
    return rows


async def search(conn: Conn, *, text: str, by: By, tenant_id: int | None) -> tuple[By, list[Found]]:
    """What ``text`` finds among the messages of ``tenant_id`` (every tenant's for None), at
    most :data:`LIMIT`, and what it was taken for. ``auto`` takes a number for a phone, else
    a message key, else a client reference."""
    kind = _kind(text, by)
    if kind == "phone":
        phone = text.replace(" ", "").replace("-", "")
        rows = await _by_filter(conn, MessageFilter(phone=phone if phone.startswith("+") else f"+{phone}"),
                                tenant_id)
    elif kind == "key":
        rows = await _by_key(conn, text, tenant_id)
        if not rows and by == "auto":
            kind = "reference"
            rows = await _by_filter(conn, MessageFilter(client_reference=text), tenant_id)
    else:
        rows = await _by_filter(conn, MessageFilter(client_reference=text), tenant_id)
    events = await message_histories(conn, ids=[r["id"] for _, r in rows])
    return kind, [Found(t, r, events.get(r["id"], [])) for t, r in rows]

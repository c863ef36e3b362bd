"""Tracked links in outgoing marketing messages: each URL becomes ``{base}/r/{code}`` (codes from
``sender.links``, the same on a resend) and the link is stored before the message goes out."""

from __future__ import annotations

from dataclasses import replace

from sender.journal import Link, Store
from sender.links import shorten
from sender.repo import MessageRow

__all__ = ["LinkShortener"]


class LinkShortener:
    def __init__(self, *, store: Store, base_url: str) -> None:
        self._store = store
        self._base = base_url

    async def apply(self, chunk: list[MessageRow]) -> list[MessageRow]:
        """``chunk`` with its links shortened (rows without links stay as they are)."""
        out: list[MessageRow] = []
        links: list[Link] = []
        for row in chunk:
            body, found = shorten(row.body, message_key=row.message_key, base_url=self._base)
            links += [(x.code, row.tenant_id, row.message_key, x.url) for x in found]
            out.append(replace(row, body=body) if found else row)
        if links:
            await self._store.save_links(links)
        return out

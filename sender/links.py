"""Link shortening in outgoing messages and bot detection for clicks. Pure logic, no I/O.

Codes are derived from the message key and the URL, so a resent message (after a crash or a
failover) carries the very same short links.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["ShortLink", "is_bot", "shorten"]

_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_BOT = re.compile(
    r"bot|crawl|spider|preview|prefetch|facebookexternalhit|slurp|whatsapp|skypeuripreview"
    r"|googleimageproxy|proofpoint|mimecast|barracuda|headless|python-requests|curl|wget"
    r"|httpclient|okhttp|go-http-client|linkexpander|embedly|quora link",
    re.IGNORECASE,
)
_ALPHABET = "0123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class ShortLink:
    code: str
    url: str


def _code(message_key: str, url: str) -> str:
    number = int.from_bytes(hashlib.blake2b(f"{message_key}\x1f{url}".encode(),
                                            digest_size=8).digest())
    out = []
    for _ in range(10):
        number, digit = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(out)


def shorten(body: str, *, message_key: str, base_url: str) -> tuple[str, list[ShortLink]]:
    """``body`` with every http(s) URL replaced by ``{base_url}/r/{code}``, and the links."""
    if "http" not in body.lower():
        return body, []
    links: list[ShortLink] = []

    def swap(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(".,;:!?)")
        tail = match.group(0)[len(url):]
        link = ShortLink(_code(message_key, url), url)
        links.append(link)
        return f"{base_url.rstrip('/')}/r/{link.code}{tail}"

    return _URL.sub(swap, body), links


def is_bot(user_agent: str | None) -> bool:
    """Link prefetchers, previewers and scripts do not count as clicks (nor a missing UA)."""
    return not user_agent or _BOT.search(user_agent) is not None

"""Inbound reply keywords and confirmation texts (CTIA-style). Pure logic, no I/O."""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["InboundKind", "classify", "confirmation_text", "needs_review"]

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "UNSTOP", "YES", "JOIN"})
HELP = frozenset({"HELP", "INFO"})
_STOP_WORD = re.compile(r"\bstop", re.IGNORECASE)


class InboundKind(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    OTHER = "other"


def classify(body: str) -> InboundKind:
    """A reply is a keyword only when it is exactly one (any case, surrounding spaces)."""
    word = body.strip().upper()
    if word in OPT_OUT:
        return InboundKind.OPT_OUT
    if word in OPT_IN:
        return InboundKind.OPT_IN
    if word in HELP:
        return InboundKind.HELP
    return InboundKind.OTHER


def needs_review(body: str, kind: InboundKind) -> bool:
    """Free text that mentions stopping ("please stop texting me") goes to a human."""
    return kind is InboundKind.OTHER and _STOP_WORD.search(body) is not None


def confirmation_text(kind: InboundKind, *, tenant_name: str, help_text: str) -> str | None:
    """The one reply to a keyword: no marketing, ever. None for free text."""
    if kind is InboundKind.OPT_OUT:
        return (f"{tenant_name}: you are unsubscribed and will receive no more messages. "
                "Reply START to resubscribe.")
    if kind is InboundKind.OPT_IN:
        return f"{tenant_name}: you are subscribed again. Reply STOP to opt out, HELP for help."
    if kind is InboundKind.HELP:
        return f"{tenant_name}: {help_text}"
    return None

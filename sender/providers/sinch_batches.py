"""How a Sinch send call is cut into batch requests: one literal body, or one body with a
``${v}`` that Sinch fills per recipient (its batch ``parameters``), so a personalised bulk slice
is one request instead of one per distinct text. Pure.

The longest prefix and suffix the texts share stay literal and each recipient's value is the
rest of its own text: exact whatever the template was, no guessing of placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass

from sender.providers.base import Outgoing

__all__ = ["MAX_BATCH", "MAX_BODY", "MAX_VALUE", "PARAMETER", "Batch", "batches"]

MAX_BATCH = 1000
"""Recipients in one batch (Sinch's limit)."""

PARAMETER = "v"
"""The one parameter of a personalised batch (Sinch: letters, digits and ``.-_``, 16 at most)."""
MAX_VALUE = 160
"""Characters in a parameter's value (Sinch's limit)."""
MAX_BODY = 1600
"""Characters in a text batch's body, placeholder included (Sinch's limit)."""
_PLACEHOLDER = "${" + PARAMETER + "}"
_OPEN = "${"
"""Sinch documents no escape for a literal ``${``: a body holding one never shares a batch with
another text, lest it be read as a placeholder."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch request: its messages and its body, literal (``values`` None) or holding one
    ``${v}`` that Sinch fills with each number's value (``values``: number to value)."""

    messages: list[Outgoing]
    body: str
    values: dict[str, str] | None = None


def _shared(a: str, b: str, most: int) -> int:
    """How many leading characters ``a`` and ``b`` share, at most ``most`` (<= both lengths)."""
    if b.startswith(a[:most]):
        return most
    n = 0
    while a[n] == b[n]:
        n += 1
    return n


def _split(body: str, prefix: int, suffix: int, shortest: int, longest: int) -> tuple[int, int] | None:
    """The literal prefix and suffix lengths of a group's template, from what its bodies share
    (``body`` one of them), or None when the group does not fit one batch: nothing shared, a
    value or the template over Sinch's limits. Every value keeps one character at least (Sinch
    documents no empty value), and a ``$`` just before the placeholder stays in the values."""
    prefix = min(prefix, shortest - 1)
    while prefix > 0 and body[prefix - 1] == "$":
        prefix -= 1
    suffix = min(suffix, shortest - prefix - 1)
    if (prefix + suffix <= 0 or longest - prefix - suffix > MAX_VALUE
            or prefix + suffix + len(_PLACEHOLDER) > MAX_BODY):
        return None
    return prefix, suffix


class _Group:
    """A batch being filled: its messages, their numbers, and what their bodies share."""

    __slots__ = ("first", "last", "longest", "messages", "numbers", "prefix", "shortest", "split",
                 "suffix")

    def __init__(self, msg: Outgoing) -> None:
        self.messages, self.numbers, self.first, self.last = [msg], {msg.to}, msg.body, msg.body[::-1]
        self.prefix = self.suffix = self.shortest = self.longest = len(msg.body)
        self.split: tuple[int, int] | None = None  # set once two bodies differ

    def add(self, msg: Outgoing, size: int) -> bool:
        """Take ``msg`` if its number is new here and the group still fits one batch with it."""
        if len(self.messages) >= size or msg.to in self.numbers:
            return False
        body = msg.body
        if body != self.first:
            if _OPEN in body or _OPEN in self.first:
                return False
            shared = (_shared(self.first, body, min(self.prefix, len(body))),
                      _shared(self.last, body[::-1], min(self.suffix, len(body))),
                      min(self.shortest, len(body)), max(self.longest, len(body)))
            split = _split(self.first, *shared)
            if split is None:
                return False
            self.prefix, self.suffix, self.shortest, self.longest = shared
            self.split = split
        self.messages.append(msg)
        self.numbers.add(msg.to)
        return True

    def batch(self) -> Batch:
        if self.split is None:
            return Batch(self.messages, self.first)
        head, tail = self.split
        template = self.first[:head] + _PLACEHOLDER + self.first[len(self.first) - tail:]
        return Batch(self.messages, template,
                     {m.to: m.body[head:len(m.body) - tail] for m in self.messages})


def batches(messages: list[Outgoing], size: int = MAX_BATCH) -> list[Batch]:
    """The messages in batches of at most ``size``, each number once in a batch (two messages
    to one number need two ids), each message in the oldest open batch it fits (:meth:`_Group.add`).
    Unrelated texts cost a comparison per pair of open batches: far less than their requests."""
    found: list[_Group] = []
    open_: list[_Group] = []
    for msg in messages:
        for group in open_:
            if group.add(msg, size):
                if len(group.messages) >= size:
                    open_.remove(group)
                break
        else:
            found.append(_Group(msg))
            open_.append(found[-1])
    return [group.batch() for group in found]

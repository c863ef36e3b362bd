"""Base of every record that travels on a topic: JSON, versioned, never pickled.

Records that carry several items (a send batch's requests, a visit record's events, a delivery
batch's events) name that list in ``ITEMS``: :meth:`WireRecord.screen` then refuses a bad item
alone and keeps its siblings, so one poison item (a NUL, a lone surrogate, a value out of
range, written by any producer) never costs the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Generic, Self, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Screened", "WireRecord", "describe", "validate_items"]

M = TypeVar("M", bound=BaseModel)
W = TypeVar("W", bound="WireRecord")
_SHOWN = 80  # characters of an item's name quoted in a reason


class WireRecord(BaseModel):
    """A topic value. ``v`` is the schema version; readers reject versions they do not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ITEMS: ClassVar[str | None] = None
    """The list field whose items :meth:`screen` validates one by one (None: all or nothing)."""
    ITEM_NAME: ClassVar[str | None] = None
    """The field of an item that names it in the reason it was refused."""

    v: int = 1

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> Self:
        return cls.model_validate_json(raw)

    @classmethod
    def screen(cls, raw: bytes | str) -> Screened[Self]:
        """Decode ``raw`` as :meth:`decode` does; if it does not validate, decode it item by
        item so that only the bad items (or the record, when its own fields are bad) are
        refused. Costs nothing more than :meth:`decode` when the record is valid."""
        try:
            return Screened(cls.decode(raw), [])
        except ValidationError as whole:
            return _item_by_item(cls, raw, whole)


@dataclass(frozen=True, slots=True)
class Screened(Generic[W]):
    """A record read from a topic: what is valid of it, and what was refused."""

    record: W | None
    """The record with its valid items (None: nothing of it is valid)."""
    refused: list[tuple[bytes, str]]
    """(payload, why) per refusal: the payload is a record holding only the refused item, or
    the whole record as read when it cannot be taken apart."""


def describe(exc: ValidationError) -> str:
    """A validation error in one line, field by field, without echoing the input."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    )


def validate_items(
    model: type[M], items: list[Any], name: str | None
) -> tuple[list[M], list[tuple[int, Any, str]]]:
    """Each of ``items`` validated as ``model`` on its own: the valid ones, and (index, item,
    why) of the others, the reason quoting the item's ``name`` field when it has one."""
    good: list[M] = []
    bad: list[tuple[int, Any, str]] = []
    for n, item in enumerate(items):
        try:
            good.append(model.model_validate(item))
        except ValidationError as exc:
            label = f"item {n}"
            if name is not None and isinstance(item, dict) and name in item:
                label += f" ({name} {repr(item[name])[:_SHOWN]})"
            bad.append((n, item, f"{label}: {describe(exc)}"))
    return good, bad


@cache
def _item_model(cls: type[WireRecord], field: str) -> type[BaseModel]:
    model: type[BaseModel] = get_args(cls.model_fields[field].annotation)[0]
    return model


def _item_by_item(cls: type[W], raw: bytes | str, whole: ValidationError) -> Screened[W]:
    """The fallback of :meth:`WireRecord.screen`. Read leniently (undecodable bytes become
    lone surrogates, which the text rule refuses naming where), then item by item."""
    payload = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    refused = [(payload, f"invalid {cls.__name__}: {describe(whole)}")]
    field = cls.ITEMS
    if field is None:
        return Screened(None, refused)
    try:
        data = json.loads(payload.decode("utf-8", "surrogateescape"))
    except ValueError:
        return Screened(None, refused)
    items = data.get(field) if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        return Screened(None, refused)
    good, bad = validate_items(_item_model(cls, field), items, cls.ITEM_NAME)
    if good:
        try:
            record = cls.model_validate({**data, field: good})
        except ValidationError as exc:  # the record's own fields: nothing of it can go on
            return Screened(None, [(payload, f"invalid {cls.__name__}: {describe(exc)}")])
    else:
        record = None
    return Screened(record, [(json.dumps({**data, field: [item]}).encode(), why)
                             for _, item, why in bad])

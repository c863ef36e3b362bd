"""Base of every record that travels on a topic: JSON, versioned, never pickled."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict

__all__ = ["WireRecord"]


class WireRecord(BaseModel):
    """A topic value. ``v`` is the schema version; readers reject versions they do not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = 1

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> Self:
        return cls.model_validate_json(raw)

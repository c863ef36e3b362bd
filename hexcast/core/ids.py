"""Database ids as inputs: PostgreSQL's bigint bounds, so an id too large for the column is a
validation error naming the field, not a driver error halfway through a request."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = ["BIGINT_MAX", "DbId"]

BIGINT_MAX = 2**63 - 1
DbId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]

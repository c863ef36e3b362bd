"""Tenant webhook endpoints as the API takes and shows them, and the events they subscribe to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hexcast.core.pgtext import PG_TEXT
from sender.webhooks.ssrf import UnsafeUrl, check_url

__all__ = [
    "EVENT_TYPES",
    "AttemptPage",
    "AttemptPublic",
    "EndpointCreate",
    "EndpointPublic",
    "EndpointUpdate",
    "EndpointWithSecret",
    "EventType",
    "ReplayCreate",
    "ReplayPublic",
]

EventType = Literal["message.accepted", "message.delivered", "message.failed", "message.expired",
                    "inbound.received", "optout.created", "campaign.finished", "campaign.at_risk",
                    "alert.firing", "alert.resolved"]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
"""What an endpoint may subscribe to; ``endpoint.disabled`` goes to every other endpoint."""


def _web_url(url: str) -> str:
    try:
        check_url(url)
    except UnsafeUrl as exc:
        raise ValueError(str(exc)) from None
    return url


WebUrl = Annotated[str, Field(min_length=8, max_length=2048), PG_TEXT, AfterValidator(_web_url)]
def _distinct(types: list[EventType]) -> list[EventType]:
    return list(dict.fromkeys(types))


EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES)),
                       AfterValidator(_distinct)]
BatchSize = Annotated[int, Field(ge=1, le=100, description="Events per request (1: no batches)")]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebUrl
    event_types: EventTypes
    description: Annotated[str, Field(max_length=500), PG_TEXT] = ""
    batch_size: BatchSize = 1


class EndpointUpdate(BaseModel):
    """A PATCH: the fields given change; ``enabled: true`` re-enables a disabled endpoint."""

    model_config = ConfigDict(extra="forbid")

    url: WebUrl | None = None
    event_types: EventTypes | None = None
    description: Annotated[str, Field(max_length=500), PG_TEXT] | None = None
    batch_size: BatchSize | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> EndpointUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class EndpointPublic(BaseModel):
    id: int
    url: str
    description: str
    event_types: list[str]
    batch_size: int
    enabled: bool
    disabled_reason: str | None
    old_secret_until: datetime | None = Field(
        description="Until then the previous secret signs too (after a rotation)")
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointPublic):
    secret: str = Field(description="whsec_…: shown only now (create, rotate)")


class AttemptPublic(BaseModel):
    id: int
    webhook_id: str
    event_ids: list[str]
    at: datetime
    status: int | None
    error: str | None
    duration_ms: float


class AttemptPage(BaseModel):
    items: list[AttemptPublic]
    next_before: int | None = Field(description="Keyset: pass as `before` for older attempts")


class ReplayCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime
    until: datetime

    @model_validator(mode="after")
    def _ordered(self) -> ReplayCreate:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until need an offset")
        if self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class ReplayPublic(BaseModel):
    requeued: int

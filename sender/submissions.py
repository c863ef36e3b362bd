"""``POST /v1/messages``: what a tenant may ask to send, and the messages it becomes. Pure.

A request is always a batch, ``{"messages": [...]}`` of 1 to 1,000 items (one message is a
batch of one). The whole batch is checked before anything is stored: one bad item refuses the
batch with a 422 naming it (``body.messages.<index>.<field>``), so a client never has to work
out which half of its batch was queued, and a retry with the same Idempotency-Key is the same
request again. Each item becomes one message whose key derives from the tenant, the
Idempotency-Key and the item's index (``sender.keys.message_key``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from hexcast.core.errors import InvalidInput
from hexcast.core.ids import DbId
from hexcast.core.pgtext import PG_TEXT
from sender.keys import message_key
from sender.models import Lane, MessageState, SendRequest
from sender.text import placeholders, render, segment_count

__all__ = [
    "MAX_BATCH",
    "MAX_SEND_AHEAD",
    "OTP_VALIDITY",
    "MessageAccepted",
    "MessageBatchAccepted",
    "MessageBatchCreate",
    "MessageCreate",
    "Planned",
    "plan_messages",
]

MAX_BATCH = 1000
MAX_SEND_AHEAD = timedelta(days=30)
OTP_VALIDITY = timedelta(seconds=300)  # an otp-lane message without validity_period, as the OTP route
_MAX_VALIDITY_S = 259_200  # 3 days: the longest validity a route may give (ProviderSpec.validity_s)

_Bad = Callable[[str, str], InvalidInput]  # (field, why) → the error naming the item's field
_MAX_TEXT = 1600

VariableName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"),
                         PG_TEXT]


class MessageCreate(BaseModel):
    """One message: ``body``, or ``template_id`` (a template of the tenant's, as campaigns use
    them) with ``variables`` for every ``{placeholder}`` it has."""

    model_config = ConfigDict(extra="forbid")

    to: Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$", description="E.164"), PG_TEXT]
    body: Annotated[str | None, Field(min_length=1, max_length=1600), PG_TEXT] = None
    template_id: DbId | None = None
    variables: Annotated[dict[VariableName, Annotated[str, Field(max_length=1600), PG_TEXT]],
                         Field(max_length=50)] = Field(default_factory=dict)
    client_reference: Annotated[str | None, Field(
        min_length=1, max_length=128,
        description="Yours; GET /v1/messages?client_reference= finds the message by it"), PG_TEXT] = None
    user_id: Annotated[str | None, Field(max_length=128), PG_TEXT] = None
    send_at: Annotated[AwareDatetime | None, Field(
        description="Send at this instant (in the future, at most 30 days ahead) instead of now;"
        " quiet hours and caps still apply then")] = None
    validity_period: Annotated[int | None, Field(
        ge=10, le=_MAX_VALIDITY_S,
        description="Seconds the message may still go after it is due (now or send_at); it"
        " expires after that, and providers are given it as the message's validity")] = None
    lane: Literal[Lane.TRANSACTIONAL, Lane.OTP] = Lane.TRANSACTIONAL

    @model_validator(mode="after")
    def _one_text(self) -> MessageCreate:
        if (self.body is None) == (self.template_id is None):
            raise ValueError("give exactly one of body or template_id")
        if self.variables and self.template_id is None:
            raise ValueError("variables go with a template_id")
        return self


class MessageBatchCreate(BaseModel):
    """1 to 1,000 messages, checked as a whole: one bad item refuses them all (422 naming it)."""

    model_config = ConfigDict(extra="forbid")

    messages: Annotated[list[MessageCreate], Field(min_length=1, max_length=MAX_BATCH)]


class MessageAccepted(BaseModel):
    """One message of the batch, in the order given: its key (for ``GET /v1/messages/{key}``)
    and its state (``queued``; ``deferred`` until ``send_at``)."""

    index: int
    message_key: str
    lane: Lane
    state: MessageState
    segments: int
    client_reference: str | None
    send_at: AwareDatetime | None
    expires_at: AwareDatetime | None


class MessageBatchAccepted(BaseModel):
    messages: list[MessageAccepted]


@dataclass(frozen=True, slots=True)
class Planned:
    """A message to store (then publish, when it is not deferred)."""

    index: int
    lane: Lane
    request: SendRequest
    segments: int
    client_reference: str | None
    send_at: datetime | None

    def accepted(self, state: MessageState) -> MessageAccepted:
        return MessageAccepted(
            index=self.index, message_key=self.request.message_key, lane=self.lane, state=state,
            segments=self.segments, client_reference=self.client_reference,
            send_at=self.send_at, expires_at=self.request.expires_at)


def plan_messages(
    items: Sequence[MessageCreate], *, tenant_id: int, idempotency_key: str,
    templates: Mapping[int, str], max_segments: int, now: datetime,
) -> list[Planned]:
    """The messages of a batch; :class:`InvalidInput` naming the first bad item's field
    (``templates``: the tenant's template bodies by id; one not in it is not the tenant's)."""
    return [_plan(i, item, tenant_id=tenant_id, idempotency_key=idempotency_key,
                  templates=templates, max_segments=max_segments, now=now)
            for i, item in enumerate(items)]


def _plan(
    index: int, item: MessageCreate, *, tenant_id: int, idempotency_key: str,
    templates: Mapping[int, str], max_segments: int, now: datetime,
) -> Planned:
    def bad(field: str, why: str) -> InvalidInput:
        return InvalidInput(f"messages[{index}]: {why}", field=f"body.messages.{index}.{field}")

    text = item.body if item.body is not None else _filled(item, templates, bad)
    segments = segment_count(text)
    if segments > max_segments:
        raise bad("body", f"the text is {segments} segments; this tenant allows {max_segments}")
    if item.send_at is not None and not now < item.send_at <= now + MAX_SEND_AHEAD:
        raise bad("send_at", "must be in the future and at most 30 days ahead")
    due = item.send_at or now
    validity = (timedelta(seconds=item.validity_period) if item.validity_period is not None
                else OTP_VALIDITY if item.lane is Lane.OTP else None)
    request = SendRequest(
        message_key=message_key(tenant_id=tenant_id, idempotency_key=idempotency_key, index=index),
        tenant_id=tenant_id, user_id=item.user_id, phone=item.to, body=text,
        expires_at=due + validity if validity is not None else None)
    return Planned(index=index, lane=item.lane, request=request, segments=segments,
                   client_reference=item.client_reference, send_at=item.send_at)


def _filled(item: MessageCreate, templates: Mapping[int, str], bad: _Bad) -> str:
    template = templates.get(item.template_id or 0)
    if template is None:
        raise bad("template_id", f"template {item.template_id} not found")
    missing = [name for name in placeholders(template) if name not in item.variables]
    if missing:
        raise bad("variables", f"no value for {', '.join('{' + m + '}' for m in missing)}")
    text = render(template, item.variables)
    if not text.strip() or len(text) > _MAX_TEXT:
        raise bad("variables", f"the filled template must have 1 to {_MAX_TEXT} characters")
    return text

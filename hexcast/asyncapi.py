"""The topics' record schemas as an AsyncAPI 3.0 document, generated from the record models.

A producer that writes to Kafka directly (a raw client writing ``visits``, say) reads
``docs/asyncapi.json``; ``hexcast asyncapi`` regenerates it, and a test keeps the committed copy
equal to what the models say, so the document never drifts from the code that reads the topics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hexcast import __version__
from hexcast.core.wire import WireRecord
from sender.models import DeadLetter, DeliveryBatch, SendBatch
from streams.models import VisitRecord
from targeting.models import CatalogRecord, ProfileRecord

__all__ = ["CHANNELS", "Channel", "asyncapi_document", "render"]


@dataclass(frozen=True)
class Channel:
    """One topic: its logical name, key format, record model and who writes and reads it."""

    topic: str
    key: str
    record: type[WireRecord]
    written_by: str
    read_by: str


CHANNELS: tuple[Channel, ...] = (
    Channel("visits", "`<tenant_id>:<user_id>` (UTF-8): one user's events stay in order on one partition",
            VisitRecord, "api (POST /v1/visits), or a producer of yours",
            "matcher (geo matching), archiver (visit history)"),
    Channel("profiles", "`<tenant_id>:<user_id>`; compacted", ProfileRecord,
            "api (recipients), `hexcast catalog sync`", "matcher"),
    Channel("catalog", "`store:<id>` or `promotion:<id>`; compacted", CatalogRecord,
            "api (stores, promotions), `hexcast catalog sync`", "matcher"),
    Channel("send.otp", "the message key", SendBatch, "api (OTP)", "sender --lane otp"),
    Channel("send.transactional", "the first message key of the request", SendBatch,
            "api (POST /v1/messages), deferred release", "sender --lane transactional"),
    Channel("send.geo", "the visit's key, `<tenant_id>:<user_id>`", SendBatch, "matcher",
            "sender --lane geo"),
    Channel("send.bulk", "campaign-run chunk id", SendBatch, "scheduler", "sender --lane bulk"),
    Channel("send.dlq", "the source record's key", DeadLetter, "every agent (a bad item, with why)",
            "`hexcast dlq list|show|replay`"),
    Channel("delivery", "`<tenant_id>`", DeliveryBatch, "sender, api (receipts, replies, clicks)",
            "matcher (budgets)"),
)

_RULES = (
    "Values are UTF-8 JSON objects, never pickled. `v` is the schema version: readers refuse "
    "versions they do not know. Text fields may not hold U+0000 or lone surrogates (PostgreSQL "
    "cannot store them): a consumer dead-letters such an item to `send.dlq` with its reason and "
    "goes on with the rest of the record. Timestamps are RFC 3339 with an offset."
)


def _message(channel: Channel) -> dict[str, Any]:
    schema = channel.record.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "name": channel.record.__name__,
        "contentType": "application/json",
        "summary": (channel.record.__doc__ or "").strip().splitlines()[0],
        "payload": {"$ref": f"#/components/schemas/{channel.record.__name__}"},
        "bindings": {"kafka": {"key": {"type": "string", "description": channel.key}}},
        "x-schema": schema,
    }


def asyncapi_document(topic_prefix: str = "") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic (names with ``topic_prefix`` in front)."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for channel in CHANNELS:
        message = _message(channel)
        schema = message.pop("x-schema")
        schemas.update(schema.pop("$defs", {}))
        schemas[channel.record.__name__] = schema
        cid = channel.topic.replace(".", "_")
        channels[cid] = {
            "address": f"{topic_prefix}{channel.topic}",
            "description": f"Written by {channel.written_by}; read by {channel.read_by}.",
            "messages": {channel.record.__name__: message},
        }
        operations[f"write_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"Written by {channel.written_by}.",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "hexcast topics", "version": __version__, "description": _RULES},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def render(topic_prefix: str = "") -> str:
    """The document as the text committed in ``docs/asyncapi.json``."""
    return json.dumps(asyncapi_document(topic_prefix), indent=2, sort_keys=False) + "\n"

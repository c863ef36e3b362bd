"""Sending: the send pipeline, consent, quiet hours, limits, routing and provider adapters.

What other domains may use is exported here (``__all__``); they import nothing else of the
sender (``tests/unit/test_layers.py`` checks it)."""

from sender.deferred import release_due
from sender.inbound_repo import tenant_max_segments
from sender.keys import bulk_key, geo_key
from sender.models import DeliveryBatch, DeliveryEvent, Lane, MessageState, SendBatch, SendRequest
from sender.stats import RunMessageStats, run_message_stats, settled_count
from sender.text import placeholders, render, segment_info, validate_template

__all__ = [
    "DeliveryBatch",
    "DeliveryEvent",
    "Lane",
    "MessageState",
    "RunMessageStats",
    "SendBatch",
    "SendRequest",
    "bulk_key",
    "geo_key",
    "placeholders",
    "release_due",
    "render",
    "run_message_stats",
    "segment_info",
    "settled_count",
    "tenant_max_segments",
    "validate_template",
]

"""Sending: the send pipeline, consent, quiet hours, limits, routing and provider adapters.

What other domains may use is exported here (``__all__``); they import nothing else of the
sender (``tests/unit/test_layers.py`` checks it)."""

from sender.capacity import LaneCapacity, RouteCapacity, lane_capacity
from sender.deferred import release_due
from sender.expiry import DEADLINE
from sender.inbound_repo import tenant_max_segments
from sender.keys import bulk_key, geo_key
from sender.models import (
    PACE_WINDOW_S,
    PACED_CHUNK_WINDOWS,
    DeliveryBatch,
    DeliveryEvent,
    Lane,
    MessageState,
    SendBatch,
    SendRequest,
)
from sender.quiet import DEFAULT_WINDOW, Window, narrowed
from sender.reservations import CapReservations, Reserve, offsets_by_day
from sender.reservations_repo import (
    advance_reservation,
    claim_filling,
    finish_filling,
    release_reservations,
    start_reservation,
)
from sender.route_control import RouteControl
from sender.routing import provider_specs
from sender.stats import RunMessageStats, run_message_stats, settled_count
from sender.text import placeholders, render, segment_info, validate_template

__all__ = [
    "DEADLINE",
    "DEFAULT_WINDOW",
    "CapReservations",
    "DeliveryBatch",
    "DeliveryEvent",
    "Lane",
    "LaneCapacity",
    "MessageState",
    "PACE_WINDOW_S",
    "PACED_CHUNK_WINDOWS",
    "Reserve",
    "RouteCapacity",
    "RouteControl",
    "RunMessageStats",
    "SendBatch",
    "SendRequest",
    "advance_reservation",
    "Window",
    "bulk_key",
    "claim_filling",
    "finish_filling",
    "geo_key",
    "lane_capacity",
    "narrowed",
    "offsets_by_day",
    "placeholders",
    "provider_specs",
    "release_due",
    "release_reservations",
    "render",
    "run_message_stats",
    "segment_info",
    "settled_count",
    "start_reservation",
    "tenant_max_segments",
    "validate_template",
]

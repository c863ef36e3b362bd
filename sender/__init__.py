"""Sending: the send pipeline, consent, quiet hours, limits, routing and provider adapters.

What other domains may use is exported here (``__all__``); they import nothing else of the
sender (``tests/unit/test_layers.py`` checks it)."""

from sender.capacity import LaneCapacity, RouteCapacity, lane_capacity
from sender.deferred import release_due
from sender.expiry import DEADLINE
from sender.inbound_repo import tenant_max_segments
from sender.keys import bulk_key, geo_key
from sender.message_list import MessageFilter, list_messages, one_message
from sender.message_list import histories as message_histories
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
from sender.retention import Pruned, prune_messages, prune_messages_every
from sender.route_control import RouteAction, RouteControl, RouteState
from sender.route_control import act as act_on_route
from sender.route_control import history as route_history
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
    "MessageFilter",
    "MessageState",
    "PACE_WINDOW_S",
    "PACED_CHUNK_WINDOWS",
    "Pruned",
    "Reserve",
    "RouteAction",
    "RouteCapacity",
    "RouteControl",
    "RouteState",
    "RunMessageStats",
    "SendBatch",
    "SendRequest",
    "act_on_route",
    "advance_reservation",
    "Window",
    "bulk_key",
    "claim_filling",
    "finish_filling",
    "geo_key",
    "lane_capacity",
    "list_messages",
    "message_histories",
    "narrowed",
    "offsets_by_day",
    "one_message",
    "placeholders",
    "provider_specs",
    "prune_messages",
    "prune_messages_every",
    "release_due",
    "release_reservations",
    "render",
    "route_history",
    "run_message_stats",
    "segment_info",
    "settled_count",
    "start_reservation",
    "tenant_max_segments",
    "validate_template",
]

"""Signed tenant delivery webhooks (Standard Webhooks) from a PostgreSQL outbox.

Triggers (migration 0018) write ``webhook_outbox`` in the transaction that changes a message,
an opt-out, an inbound reply or a campaign run; the ``hexcast webhooks`` worker
(:func:`run_webhooks`) fans the events out to the tenant's endpoints and sends them; the
tenant manages endpoints through :data:`router` (``/v1/webhooks/endpoints``).
"""

from sender.webhooks.api import router
from sender.webhooks.delivery import run_webhooks
from sender.webhooks.models import EVENT_TYPES, EndpointCreate, EndpointPublic

__all__ = ["EVENT_TYPES", "EndpointCreate", "EndpointPublic", "router", "run_webhooks"]

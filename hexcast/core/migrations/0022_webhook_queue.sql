-- The webhooks worker claims due deliveries in (next_at, id) order, straight from this index:
-- a claim reads the rows in front of the queue (in flight, or waiting behind an earlier event
-- of their message that is in flight) and the ones it takes, never the whole backlog.
-- Pending deliveries of a disabled endpoint are parked at next_at = 'infinity'.
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_next ON webhook_deliveries (next_at, id) WHERE state = 'pending';

-- Retention (sender/webhooks/retention.py): old events are found by age (BRIN: tiny, and cheap
-- to keep on append-only tables), and deleting one finds its deliveries by outbox_id.
CREATE INDEX webhook_outbox_age ON webhook_outbox USING brin (created_at);
CREATE INDEX webhook_attempts_age ON webhook_attempts USING brin (at);
CREATE INDEX webhook_deliveries_outbox ON webhook_deliveries (outbox_id);

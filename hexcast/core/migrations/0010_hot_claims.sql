-- The claim (queued → sending, before the provider call) becomes a HOT update: PostgreSQL
-- writes the new row version on the same page and no index entry at all, where it wrote one
-- in every index of `messages` before. An update is HOT only when no indexed column (key or
-- partial-index predicate) changes value, so no index may mention `state`:
-- * the sweeper's index keeps its rows in `queued` or `sending` through a stored generated
--   column, `pending`, which the claim leaves true;
-- * the deferred index is on `deferred_until`, generated as `not_before` while deferred;
-- * the tenant and campaign-run indexes lose the state (their queries read it from the row);
-- * the table fills new pages to 40 %, leaving room for the claim's row versions (a little
--   wider than the inserted ones: the provider and the reason are set).
-- The acceptance still writes index entries (it ends `pending` and sets the provider's id).
-- message_events is append-only and read by message (its (message_id, id) index): its
-- primary-key index was one more entry for every one of a message's three events.

ALTER TABLE messages
    ADD COLUMN pending boolean
        GENERATED ALWAYS AS (state IN ('queued'::message_state, 'sending'::message_state)) STORED,
    ADD COLUMN deferred_until timestamptz
        GENERATED ALWAYS AS (CASE WHEN state = 'deferred'::message_state THEN not_before END) STORED;
ALTER TABLE messages SET (fillfactor = 40);

DROP INDEX messages_lane_pending;
CREATE INDEX messages_lane_pending ON messages (lane, id) WHERE pending;

DROP INDEX messages_deferred_due;
CREATE INDEX messages_deferred_due ON messages (deferred_until) WHERE deferred_until IS NOT NULL;

DROP INDEX messages_tenant_state;
CREATE INDEX messages_tenant ON messages (tenant_id, id);

DROP INDEX messages_campaign_run;
CREATE INDEX messages_campaign_run ON messages (campaign_run_id) WHERE campaign_run_id IS NOT NULL;

ALTER TABLE message_events DROP CONSTRAINT message_events_pkey;

-- The three moves of every send (enqueue, claim, acceptance) each wrote one message_events row
-- per message: on the bulk path three heap rows and three index entries per recipient, ~20 % of
-- the PostgreSQL CPU of those statements (BENCHMARKS.md, 2026-12-04). They now write one row
-- per statement: the ids it moved, their common from and to states, the actor and the
-- reason. The other moves (receipts, deferrals, suppressions, requeues, failures) still
-- write a row per message.
-- * `id` comes from message_events' own sequence, so a message's history is both tables'
--   rows in one order;
-- * `span` (the lowest to the highest id) is the GiST-indexed way in: a message's statements
--   are the rows whose span holds its id and whose ids include it;
-- * rows are append-only, like message_events; deleting messages deletes the statement rows
--   none of whose messages is left.
CREATE TABLE message_statement_events (
    id          bigint NOT NULL DEFAULT nextval('message_events_id_seq'),
    message_ids bigint[] NOT NULL CHECK (cardinality(message_ids) > 0),
    span        int8range NOT NULL,
    from_state  message_state,
    to_state    message_state NOT NULL,
    actor       text NOT NULL,
    reason      text,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX message_statement_events_span ON message_statement_events USING gist (span);

CREATE TRIGGER message_statement_events_no_update BEFORE UPDATE ON message_statement_events
    FOR EACH ROW EXECUTE FUNCTION message_events_append_only();

CREATE OR REPLACE FUNCTION messages_delete_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone_span int8range;
BEGIN
    DELETE FROM message_events e USING gone g WHERE e.message_id = g.id;
    SELECT int8range(min(id), max(id), '[]') INTO gone_span FROM gone;
    IF gone_span IS NOT NULL THEN
        DELETE FROM message_statement_events s WHERE s.span && gone_span
            AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = ANY(s.message_ids));
    END IF;
    RETURN NULL;
END $$;

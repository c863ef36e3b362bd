-- Replies threaded and reviewed: a reply names the last message its tenant sent to that number
-- within 7 days (`reply_to`, a message key), and a flagged reply ("please stop texting me") is
-- resolved by a person: as an opt-out or dismissed, with who and when.
ALTER TABLE inbound_messages
    ADD COLUMN reply_to     text,
    ADD COLUMN resolved_at  timestamptz,
    ADD COLUMN resolution   text CHECK (resolution IN ('opt_out', 'dismiss')),
    ADD COLUMN resolved_by  text;
DROP INDEX inbound_flagged;
CREATE INDEX inbound_flagged ON inbound_messages (tenant_id, id) WHERE flagged AND resolved_at IS NULL;
-- The last message a tenant sent a number: one index probe per reply.
CREATE INDEX messages_tenant_phone ON messages (tenant_id, phone, id);

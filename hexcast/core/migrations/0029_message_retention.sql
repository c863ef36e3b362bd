-- Retention of the message log (sender/retention.py): messages in a final state older than
-- `message_retention_days` are deleted in batches, with the rows keyed by them.
-- * A BRIN index on created_at finds where the old messages end (the highest old id) by
--   reading only the block ranges old enough; the batches then walk the primary key up to it.
--   created_at is never updated and BRIN is a summarising index, so the senders' HOT updates
--   (migration 0010: no btree index may mention a column they change) stay HOT. No index on
--   (state, updated_at) for the same reason.
-- * provider_parts has its message_key index; short links get one, and a link's clicks are
--   found by code whether a bot made them or not (the ON DELETE CASCADE from short_links
--   scanned link_clicks once per link: the old index only held human clicks).
CREATE INDEX messages_created_brin ON messages USING brin (created_at);
CREATE INDEX short_links_message ON short_links (message_key);
CREATE INDEX link_clicks_code_all ON link_clicks (code);
DROP INDEX link_clicks_code;

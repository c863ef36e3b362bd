-- The transactional lane (order updates, receipts: messages the recipient asked for), a tier
-- between otp and geo, and what the tenant-facing message API needs to find its messages.
--
-- ALTER TYPE ... ADD VALUE runs inside the runner's transaction on PostgreSQL 12 and later
-- (compose runs 16, the test machine 15); the new value may not be *used* in the transaction that adds it, so
-- nothing below names it (the SQL that does runs after this migration committed).
ALTER TYPE message_lane ADD VALUE IF NOT EXISTS 'transactional' AFTER 'otp';

-- The tenant's own reference for a message (`POST /v1/messages`, at most 128 characters),
-- looked up by `GET /v1/messages?client_reference=`. Not unique: a tenant may reuse a
-- reference (an order's several updates), the lookup lists them all. Partial, so the bulk
-- and geo lanes' rows (which never have one) add no index entry.
ALTER TABLE messages ADD COLUMN client_reference text
    CHECK (client_reference IS NULL OR length(client_reference) BETWEEN 1 AND 128);
CREATE INDEX messages_client_reference ON messages (tenant_id, client_reference, id)
    WHERE client_reference IS NOT NULL;

-- A campaign run's messages are paged by id (`GET /v1/messages?campaign_run_id=`): with the id
-- in the index a page is a range read, not every row of the run sorted. The index keeps its
-- predicate and mentions no state, so the claim stays a HOT update (migration 0010).
DROP INDEX messages_campaign_run;
CREATE INDEX messages_campaign_run ON messages (campaign_run_id, id) WHERE campaign_run_id IS NOT NULL;

-- A message's provider client reference is its message key (the enqueue writes both from the
-- same value), so its own unique index duplicated the key's: one more index entry for every
-- row version on the bulk path's three writes per message. The check keeps the two equal;
-- receipts find their messages by the key's index.
ALTER TABLE messages DROP CONSTRAINT messages_client_ref_key;
ALTER TABLE messages ADD CONSTRAINT messages_client_ref_is_key CHECK (client_ref = message_key);

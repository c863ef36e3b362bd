-- The message log is the hot write path of a bulk send (three state changes per message), so
-- it carries no per-row work that buys nothing:
-- * message_events rows are only written by statements over the messages' own rows, so the
--   per-row foreign-key check (an index lookup and a row lock of the message per event) goes;
--   deleting messages still deletes their events, by one statement-level trigger.
-- * messages_provider_id (provider, provider_message_id) duplicated the partial index on
--   provider_message_id that the receipt lookups use.
ALTER TABLE message_events DROP CONSTRAINT message_events_message_id_fkey;

CREATE FUNCTION messages_delete_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_events e USING gone g WHERE e.message_id = g.id;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_delete_events AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION messages_delete_events();

DROP INDEX messages_provider_id;

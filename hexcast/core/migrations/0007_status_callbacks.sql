-- Single-message providers (Twilio-like) report status by their own message id only.
CREATE INDEX messages_provider_message_id ON messages (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

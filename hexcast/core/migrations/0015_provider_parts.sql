-- The ids a provider gave the parts of a multi-part message, in order: Vonage answers one id per
-- part and reports each part by its own id (its receipts say neither which part nor how many),
-- an SMPP SMSC answers each submit_sm with an id of its own. A part's receipt finds here its
-- message (the message key) and its place, so a message is delivered only once every part is.
-- Single-part messages have no rows: their one id is messages.provider_message_id.
CREATE TABLE provider_parts (
    provider     text NOT NULL,          -- the route (ProviderSpec.name) that answered
    part_id      text NOT NULL,
    message_key  text NOT NULL,
    part         integer NOT NULL CHECK (part >= 1),
    parts        integer NOT NULL CHECK (parts >= part AND parts <= 255),
    PRIMARY KEY (provider, part_id)
);
CREATE INDEX provider_parts_message ON provider_parts (message_key);

-- Delivery receipts of the provider APIs (Twilio, Vonage, Plivo, Sinch, Telnyx), one row per
-- message part, kept until the message they name is known and every part has spoken:
-- * `ref` names the message: our client reference (= message key) when the callback carries
--   it (`by_ref`), else the provider's message id as its adapter answered it at acceptance;
-- * a part's row only moves forward (accepted/sent → a final status); a final status is never
--   overwritten, so duplicated and out-of-order callbacks change nothing;
-- * a receipt whose message is not known yet (it came before the acceptance was committed) waits
--   with `applied_at` null; the sender applies it right after the acceptance.
CREATE TABLE provider_receipts (
    provider     text NOT NULL,          -- the route (ProviderSpec.name) it came from
    ref          text NOT NULL,
    by_ref       boolean NOT NULL,
    part         integer NOT NULL DEFAULT 1 CHECK (part >= 1),
    parts        integer NOT NULL DEFAULT 1 CHECK (parts >= part AND parts <= 255),
    status       text NOT NULL,          -- sender.providers.status.DeliveryStatus
    code         text,                   -- the provider's own status or error code
    error_class  text,                   -- sender.providers.status.ErrorClass
    received_at  timestamptz NOT NULL DEFAULT now(),
    applied_at   timestamptz,
    PRIMARY KEY (provider, ref, part)
);
CREATE INDEX provider_receipts_waiting ON provider_receipts (ref) WHERE applied_at IS NULL;

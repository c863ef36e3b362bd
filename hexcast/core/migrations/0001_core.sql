-- hexcast core schema: tenants, catalog, recipients, messages and their audit trail.

CREATE TABLE tenants (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    help_text     text NOT NULL DEFAULT 'Reply STOP to opt out.',
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 of the secret; the prefix finds the row.
CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    prefix        text NOT NULL UNIQUE,
    key_hash      bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE stores (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL,
    lat           double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng           double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    time_zone     text NOT NULL,
    geofence      jsonb NOT NULL,          -- {"type": "circle", ...} or GeoJSON polygon
    cells         text[] NOT NULL,         -- compacted H3 cover of the geofence
    h3_resolution smallint NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stores_tenant ON stores (tenant_id, id);

CREATE TABLE promotions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    store_id      bigint NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
    name          text NOT NULL,
    body          text NOT NULL CHECK (length(body) > 0),
    interests     text[] NOT NULL DEFAULT '{}',
    valid_from    date,
    valid_until   date,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until >= valid_from)
);
CREATE INDEX promotions_tenant ON promotions (tenant_id, id);
CREATE INDEX promotions_store ON promotions (store_id);

CREATE TABLE recipients (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id       text NOT NULL,           -- the app's user id, as sent in visits
    phone         text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    time_zone     text,
    interests     text[] NOT NULL DEFAULT '{}',
    consent_at    timestamptz,             -- marketing consent record
    consent_source text,
    consent_text  text,
    opted_out_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id),
    UNIQUE (tenant_id, phone)
);

CREATE TYPE message_state AS ENUM (
    'queued', 'sending', 'accepted', 'delivered', 'failed', 'expired',
    'suppressed', 'deferred', 'unknown'
);
CREATE TYPE message_lane AS ENUM ('otp', 'geo', 'bulk');

CREATE TABLE messages (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_key   text NOT NULL UNIQUE,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    lane          message_lane NOT NULL,
    user_id       text,
    phone         text NOT NULL,
    body          text NOT NULL,
    promotion_id  bigint,
    campaign_run_id bigint,
    state         message_state NOT NULL DEFAULT 'queued',
    reason        text,
    attempts      integer NOT NULL DEFAULT 0,
    provider      text,
    client_ref    text UNIQUE,
    provider_message_id text,
    not_before    timestamptz,
    expires_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    delivered_at  timestamptz
);
CREATE INDEX messages_tenant_state ON messages (tenant_id, state);
CREATE INDEX messages_provider_id ON messages (provider, provider_message_id);

-- Append-only (updates are refused): one row per state change; a message's history.
CREATE TABLE message_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    from_state    message_state,
    to_state      message_state NOT NULL,
    actor         text NOT NULL,           -- process or component that made the change
    reason        text,
    at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX message_events_message ON message_events (message_id, id);

CREATE FUNCTION message_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'message_events is append-only';
END $$;
CREATE TRIGGER message_events_no_update BEFORE UPDATE ON message_events
    FOR EACH ROW EXECUTE FUNCTION message_events_append_only();

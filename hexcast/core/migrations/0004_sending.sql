-- Sender: finding rows a crashed or stalled sender left behind (queued/sending), per lane.
CREATE INDEX messages_lane_pending ON messages (lane, id)
    WHERE state IN ('queued', 'sending');

-- Longest message a tenant may send, in segments: checked when a message is created.
ALTER TABLE tenants ADD COLUMN max_segments integer NOT NULL DEFAULT 6
    CHECK (max_segments BETWEEN 1 AND 10);

-- Opt-outs per tenant and number (STOP keywords), whatever the recipient profile says.
CREATE TABLE opt_outs (
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone         text NOT NULL,
    opted_out_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    source        text NOT NULL,
    PRIMARY KEY (tenant_id, phone)
);

-- Inbound replies; free text mentioning "stop" is flagged for a human to review.
CREATE TABLE inbound_messages (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone         text NOT NULL,
    body          text NOT NULL,
    kind          text NOT NULL,           -- opt_out, opt_in, help, other
    flagged       boolean NOT NULL DEFAULT false,
    provider_ref  text,                    -- the provider's id of the reply: retries dedupe
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX inbound_provider_ref ON inbound_messages (tenant_id, provider_ref);
CREATE INDEX inbound_flagged ON inbound_messages (tenant_id, id) WHERE flagged;

-- Confirmations of STOP/START/HELP go even to an opted-out number (exactly one each).
ALTER TABLE messages ADD COLUMN confirmation boolean NOT NULL DEFAULT false;
ALTER TABLE messages ADD COLUMN segments integer;
CREATE INDEX messages_deferred_due ON messages (not_before) WHERE state = 'deferred';

-- Short links (/r/{code}) put into outgoing messages, and their clicks (bots not counted).
CREATE TABLE short_links (
    code          text PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    message_key   text NOT NULL,
    url           text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE link_clicks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          text NOT NULL REFERENCES short_links(code) ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT now(),
    user_agent    text,
    bot           boolean NOT NULL
);
CREATE INDEX link_clicks_code ON link_clicks (code) WHERE NOT bot;

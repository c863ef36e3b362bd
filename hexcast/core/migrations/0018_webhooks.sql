-- Tenant delivery webhooks (Standard Webhooks), fed by an outbox written in the same transaction
-- as the state change, by statement-level triggers: the sender's SQL is untouched, and a
-- statement whose tenants have no enabled endpoint subscribed to the event writes nothing
-- (the first probe answers from the small endpoint table; a 5M campaign without a subscriber
-- adds one probe per statement). `sender/webhooks/` reads and sends them.

CREATE TABLE webhook_endpoints (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url              text NOT NULL,
    description      text NOT NULL DEFAULT '',
    event_types      text[] NOT NULL CHECK (cardinality(event_types) > 0),
    batch_size       integer NOT NULL DEFAULT 1 CHECK (batch_size BETWEEN 1 AND 100),
    enabled          boolean NOT NULL DEFAULT true,
    disabled_reason  text,
    secret           text NOT NULL,              -- whsec_…: HMAC needs it in clear
    old_secret       text,                       -- the previous one, valid until old_secret_until
    old_secret_until timestamptz,
    failing_since    timestamptz,                -- first failure since the last success
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, id);

-- One row per event; kept after fan-out (replay reads them). `subject` is the message key of a
-- message event, whose `sequence` grows with each of its events.
CREATE TABLE webhook_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    text NOT NULL UNIQUE DEFAULT 'evt_' || replace(gen_random_uuid()::text, '-', ''),
    tenant_id   bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    type        text NOT NULL,
    subject     text,
    sequence    integer NOT NULL DEFAULT 0,
    payload     jsonb NOT NULL,                  -- {"type", "timestamp", "data"}
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    fanned_out  boolean NOT NULL DEFAULT false
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox (id) WHERE NOT fanned_out;

-- One row per (event, endpoint): what to send, when, and how it went.
CREATE TABLE webhook_deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id  bigint NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    outbox_id    bigint NOT NULL REFERENCES webhook_outbox(id) ON DELETE CASCADE,
    subject      text,
    sequence     integer NOT NULL DEFAULT 0,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until  timestamptz,                    -- a worker is sending it (kill -9: it expires)
    event_at     timestamptz NOT NULL,
    delivered_at timestamptz,
    last_error   text,
    UNIQUE (endpoint_id, outbox_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (endpoint_id, subject, sequence)
    WHERE state = 'pending' AND subject IS NOT NULL;
CREATE INDEX webhook_deliveries_replay ON webhook_deliveries (endpoint_id, event_at);

-- Every request made: one event or a batch.
CREATE TABLE webhook_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id  bigint NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    webhook_id   text NOT NULL,                  -- the event id, or the batch id
    event_ids    text[] NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    status       integer,                        -- the HTTP status; NULL: no answer
    error        text,
    duration_ms  double precision NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);

-- Whether the tenant has an enabled endpoint subscribed to `type` (an index probe).
CREATE FUNCTION webhook_subscribed(tenant bigint, type text) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM webhook_endpoints
                   WHERE tenant_id = tenant AND enabled AND type = ANY(event_types))
$$;

CREATE FUNCTION webhook_utc(at timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- message.<state>: accepted (rank 1) then a final state (rank 2); `attempts` (counted at each
-- claim) lifts the sequence of a message sent again after a dead-letter replay.
CREATE FUNCTION webhook_messages_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled AND event_types &&
                   ARRAY['message.accepted', 'message.delivered', 'message.failed',
                         'message.expired']) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_outbox (tenant_id, type, subject, sequence, payload)
    SELECT n.tenant_id, 'message.' || n.state, n.message_key, s.seq,
        jsonb_build_object('type', 'message.' || n.state, 'timestamp', webhook_utc(n.updated_at),
            'data', jsonb_build_object(
                'message_key', n.message_key,
                'client_reference', to_jsonb(n) -> 'client_reference',
                'tenant_id', n.tenant_id, 'phone', n.phone, 'lane', n.lane, 'state', n.state,
                'reason', n.reason, 'provider', n.provider,
                'campaign_run_id', n.campaign_run_id, 'promotion_id', n.promotion_id,
                'sequence', s.seq))
    FROM n JOIN o ON o.id = n.id
    CROSS JOIN LATERAL (SELECT n.attempts * 4
        + CASE WHEN n.state = 'accepted' THEN 1 ELSE 2 END AS seq) s
    WHERE n.state IN ('accepted', 'delivered', 'failed', 'expired') AND n.state <> o.state
      AND webhook_subscribed(n.tenant_id, 'message.' || n.state)
    ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_messages AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT
    EXECUTE FUNCTION webhook_messages_changed();

-- optout.created and inbound.received: the inserted row as the event's data, less the columns
-- named in the trigger's second argument (internal ones).
CREATE FUNCTION webhook_rows_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_outbox (tenant_id, type, payload)
    SELECT n.tenant_id, TG_ARGV[0], jsonb_build_object('type', TG_ARGV[0],
        'timestamp', webhook_utc(clock_timestamp()), 'data', to_jsonb(n) - TG_ARGV[1]::text[])
    FROM n WHERE webhook_subscribed(n.tenant_id, TG_ARGV[0]);
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_opt_outs AFTER INSERT ON opt_outs
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT
    EXECUTE FUNCTION webhook_rows_inserted('optout.created', '{}');
CREATE TRIGGER webhook_inbound AFTER INSERT ON inbound_messages
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT
    EXECUTE FUNCTION webhook_rows_inserted('inbound.received', '{provider_ref,resolved_by}');

-- A run is finished once every wave is released (sending may still go on), or cancelled.
CREATE FUNCTION webhook_runs_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_outbox (tenant_id, type, subject, payload)
    SELECT n.tenant_id, 'campaign.finished', NULL,
        jsonb_build_object('type', 'campaign.finished', 'timestamp', webhook_utc(clock_timestamp()),
            'data', jsonb_build_object('tenant_id', n.tenant_id, 'campaign_run_id', n.id,
                'campaign_id', n.campaign_id, 'state', n.state,
                'released_at', n.released_at))
    FROM n JOIN o ON o.id = n.id
    WHERE ((n.released_at IS NOT NULL AND o.released_at IS NULL)
           OR (n.state = 'cancelled' AND o.state <> 'cancelled' AND o.released_at IS NULL))
      AND webhook_subscribed(n.tenant_id, 'campaign.finished');
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_runs AFTER UPDATE ON campaign_runs
    REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT
    EXECUTE FUNCTION webhook_runs_finished();

-- Campaigns (issue 4): templates, campaigns, runs, per-zone waves with a claim lease and a
-- checkpointed keyset cursor, holdouts, API idempotency keys, and recipient fields for segments.

ALTER TABLE recipients
    ADD COLUMN first_name    text,
    ADD COLUMN last_name     text,
    ADD COLUMN last_visit_at timestamptz,
    ADD COLUMN lat           double precision CHECK (lat BETWEEN -90 AND 90),
    ADD COLUMN lng           double precision CHECK (lng BETWEEN -180 AND 180),
    -- the H3 cell of (lat, lng) and its ancestors, so a segment cell of any resolution matches
    ADD COLUMN h3_cells      text[] NOT NULL DEFAULT '{}';
CREATE INDEX recipients_tenant_keyset ON recipients (tenant_id, id);
CREATE INDEX recipients_h3_cells ON recipients USING gin (h3_cells);

CREATE TABLE templates (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL,
    body          text NOT NULL CHECK (length(body) > 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX templates_tenant ON templates (tenant_id, id);

CREATE TABLE campaigns (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL,
    template_id   bigint REFERENCES templates(id) ON DELETE SET NULL,
    body          text NOT NULL CHECK (length(body) > 0),
    segment       jsonb NOT NULL,
    cron          text,
    run_at        timestamp,                -- one-shot: wall time in time_zone (or each zone)
    time_zone     text NOT NULL,
    time_mode     text NOT NULL CHECK (time_mode IN ('fixed', 'recipient_local')),
    deadline      timestamp,                -- wall time, in time_zone or in each recipient's zone
    max_rate      double precision CHECK (max_rate > 0),
    lane          message_lane NOT NULL DEFAULT 'bulk',
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'cancelled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (run_at IS NULL))
);
CREATE INDEX campaigns_tenant ON campaigns (tenant_id, id);

-- scheduled_for: the fire instant (UTC, naive) in fixed mode; the wall time in recipient_local.
CREATE TABLE campaign_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id   bigint NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    scheduled_for timestamp NOT NULL,
    first_fire_at timestamptz NOT NULL,
    state         text NOT NULL DEFAULT 'running'
                  CHECK (state IN ('running', 'paused', 'cancelled')),
    rate_per_s    double precision,
    forecast      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    released_at   timestamptz,              -- every wave released (sending may go on)
    UNIQUE (campaign_id, scheduled_for)
);
CREATE INDEX campaign_runs_state ON campaign_runs (state, first_fire_at);

-- One wave per time zone (recipient_local), or one for the whole audience (fixed: zone NULL).
CREATE TABLE campaign_waves (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        bigint NOT NULL REFERENCES campaign_runs(id) ON DELETE CASCADE,
    time_zone     text,
    fire_at       timestamptz NOT NULL,
    deadline_at   timestamptz,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'releasing', 'done', 'cancelled')),
    cursor_id     bigint NOT NULL DEFAULT 0,   -- last recipient id released (keyset)
    released      integer NOT NULL DEFAULT 0,
    held_out      integer NOT NULL DEFAULT 0,
    chunks        integer NOT NULL DEFAULT 0,
    claimed_by    text,
    lease_until   timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    UNIQUE NULLS NOT DISTINCT (run_id, time_zone)
);
CREATE INDEX campaign_waves_due ON campaign_waves (state, fire_at);

-- The control group: recorded, never sent.
CREATE TABLE campaign_holdouts (
    run_id        bigint NOT NULL REFERENCES campaign_runs(id) ON DELETE CASCADE,
    recipient_id  bigint NOT NULL,
    PRIMARY KEY (run_id, recipient_id)
);

-- Idempotency-Key: same key + same body → same response; different body → 409.
CREATE TABLE idempotency_keys (
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status        integer,                  -- NULL while the first request is in flight
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Campaign stats group messages by run.
CREATE INDEX messages_campaign_run ON messages (campaign_run_id, state) WHERE campaign_run_id IS NOT NULL;

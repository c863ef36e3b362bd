-- Visit history for analytics and segment recency, written by the `archiver` worker.
CREATE TABLE visits (
    tenant_id     bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_id      text NOT NULL,
    user_id       text NOT NULL,
    lat           double precision NOT NULL,
    lng           double precision NOT NULL,
    accuracy_m    real NOT NULL,
    cell          text NOT NULL,            -- H3 cell at resolution 9
    ts            timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX visits_user_ts ON visits (tenant_id, user_id, ts DESC);
CREATE INDEX visits_cell ON visits (tenant_id, cell);

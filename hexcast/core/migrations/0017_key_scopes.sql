-- Scoped API keys: each key does one job (the key inside a mobile app only posts visits).
-- Keys made before scopes existed keep today's rights: admin.
ALTER TABLE api_keys
    ADD COLUMN scope text NOT NULL DEFAULT 'admin'
        CHECK (scope IN ('ingest', 'send', 'marketer', 'admin')),
    ADD COLUMN name text,
    ADD COLUMN last_used_at timestamptz,  -- moved at most once a minute per key
    ADD COLUMN rotated_from bigint REFERENCES api_keys(id) ON DELETE SET NULL;
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

-- Tenant settings that may only be stricter than the law and the defaults (checked by the API
-- against the legal window and the sender's caps): NULL = the legal window, the default caps.
ALTER TABLE tenants
    ADD COLUMN quiet_start time,
    ADD COLUMN quiet_end time,
    ADD COLUMN cap_per_day integer CHECK (cap_per_day >= 1),
    ADD COLUMN cap_per_24h integer CHECK (cap_per_24h >= 1),
    ADD CONSTRAINT tenants_quiet_window CHECK (
        (quiet_start IS NULL) = (quiet_end IS NULL)
        AND (quiet_start IS NULL OR quiet_start < quiet_end));

-- Sessions of the operator console (/console, hexcast/console/). The cookie holds a random id;
-- only its SHA-256 is kept, so a copy of this table opens no session. A session is an
-- operator's (signed in with the operator token; `token_digest` is that token's hash, so a new
-- token ends the old sessions) or a tenant's (signed in with one of its admin keys; revoking
-- the key ends the session). Every form of a session carries its CSRF token.
CREATE TABLE console_sessions (
    id_hash      bytea PRIMARY KEY,
    principal    text NOT NULL CHECK (principal IN ('operator', 'tenant')),
    tenant_id    bigint REFERENCES tenants(id) ON DELETE CASCADE,
    key_id       bigint REFERENCES api_keys(id) ON DELETE CASCADE,
    token_digest bytea,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CHECK ((principal = 'tenant') = (tenant_id IS NOT NULL AND key_id IS NOT NULL)),
    CHECK ((principal = 'operator') = (token_digest IS NOT NULL))
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- A tenant moving from a legacy platform runs hexcast in dry run first: every decision is
-- made and recorded, and what would be sent goes to a dry-run route that sends nothing.
-- Cutover is this one column, reversible; each change is audited.
ALTER TABLE tenants ADD COLUMN send_mode text NOT NULL DEFAULT 'live'
    CHECK (send_mode IN ('live', 'dry_run'));
CREATE TABLE send_mode_changes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    send_mode  text NOT NULL CHECK (send_mode IN ('live', 'dry_run')),
    actor      text NOT NULL,
    reason     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX send_mode_changes_tenant ON send_mode_changes (tenant_id, id);

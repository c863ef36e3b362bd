-- Alerts Alertmanager posts to the api (POST /v1/admin/alerts/alertmanager, hexcast/core/alerts.py):
-- one row per alert occurrence, (fingerprint, starts_at): the same alert firing again later is a
-- new row; a notification repeated, or its resolution, updates the row. `tenant_id` is the
-- alert's `tenant` label when that names a tenant (NULL for route- and process-wide alerts).
CREATE TABLE alerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint text NOT NULL,
    status      text NOT NULL CHECK (status IN ('firing', 'resolved')),
    alertname   text NOT NULL,
    tenant_id   bigint REFERENCES tenants(id) ON DELETE CASCADE,
    provider    text NOT NULL DEFAULT '',
    labels      jsonb NOT NULL,
    annotations jsonb NOT NULL DEFAULT '{}',
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (fingerprint, starts_at)
);
CREATE INDEX alerts_firing ON alerts (starts_at DESC) WHERE status = 'firing';
CREATE INDEX alerts_tenant ON alerts (tenant_id, starts_at DESC) WHERE tenant_id IS NOT NULL;

-- alert.firing when a tenant's alert is first seen firing, alert.resolved when it resolves:
-- one subject per occurrence (sequence 1, then 2), so a resolution never overtakes its firing.
CREATE FUNCTION webhook_alert_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text := 'alert.' || NEW.status;
BEGIN
    IF webhook_subscribed(NEW.tenant_id, kind) THEN
        INSERT INTO webhook_outbox (tenant_id, type, subject, sequence, payload)
        VALUES (NEW.tenant_id, kind, 'alert:' || NEW.id,
            CASE WHEN NEW.status = 'firing' THEN 1 ELSE 2 END,
            jsonb_build_object('type', kind, 'timestamp', webhook_utc(clock_timestamp()),
                'data', jsonb_build_object('tenant_id', NEW.tenant_id, 'alertname', NEW.alertname,
                    'status', NEW.status, 'provider', NEW.provider,
                    'severity', NEW.labels ->> 'severity', 'labels', NEW.labels,
                    'summary', NEW.annotations ->> 'summary',
                    'description', NEW.annotations ->> 'description',
                    'starts_at', webhook_utc(NEW.starts_at),
                    'ends_at', CASE WHEN NEW.ends_at IS NOT NULL THEN webhook_utc(NEW.ends_at) END,
                    'fingerprint', NEW.fingerprint)));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_alert_inserted AFTER INSERT ON alerts
    FOR EACH ROW WHEN (NEW.tenant_id IS NOT NULL AND NEW.status = 'firing')
    EXECUTE FUNCTION webhook_alert_changed();
CREATE TRIGGER webhook_alert_resolved AFTER UPDATE OF status ON alerts
    FOR EACH ROW WHEN (NEW.tenant_id IS NOT NULL AND OLD.status = 'firing' AND NEW.status = 'resolved')
    EXECUTE FUNCTION webhook_alert_changed();

-- Run lifecycle (issue 22, items 7 and 4): a run ends `finished` (or `finished_with_expired`,
-- or stays `cancelled`) with its end time and its messages' counts per state, and
-- `campaign.finished` is written once, then; a zone projected to miss its deadline raises
-- `campaign.at_risk` once.

ALTER TABLE campaign_runs DROP CONSTRAINT campaign_runs_state_check;
ALTER TABLE campaign_runs ADD CONSTRAINT campaign_runs_state_check
    CHECK (state IN ('running', 'paused', 'cancelled', 'finished', 'finished_with_expired'));
ALTER TABLE campaign_runs
    ADD COLUMN finished_at timestamptz,        -- every message of the run has its outcome
    ADD COLUMN counts      jsonb;              -- its messages per state, then
CREATE INDEX campaign_runs_unfinished ON campaign_runs (id) WHERE finished_at IS NULL;

-- The projection that raised `campaign.at_risk` for this zone (once per zone and run).
ALTER TABLE campaign_waves
    ADD COLUMN at_risk_at         timestamptz,
    ADD COLUMN at_risk_projection jsonb;

-- How far a run's messages got, as deltas appended by the statements that move them: settled
-- (reached a provider or an outcome: accepted, unknown, delivered, failed, expired,
-- suppressed) and final (delivered, failed, expired, suppressed). Append-only, so concurrent
-- senders never wait on one counter row; the scheduler sums a run's rows (folding the old
-- ones into one) and deletes them when the run finishes. No foreign key: a per-row check on
-- the senders' hot path, like message_events.
CREATE TABLE campaign_run_tallies (
    run_id   bigint NOT NULL,
    settled  integer NOT NULL,
    final    integer NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX campaign_run_tallies_run ON campaign_run_tallies (run_id, at);

-- Per statement: the rows it left settled (or final) minus those that were before, per run;
-- campaign_run_id never changes, so no join of the transition tables is needed.
CREATE FUNCTION campaign_run_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_run_tallies (run_id, settled, final)
    SELECT run_id, sum(settled)::integer, sum(final)::integer FROM (
        SELECT campaign_run_id AS run_id,
            (state::text IN ('accepted', 'unknown', 'delivered', 'failed', 'expired',
                             'suppressed'))::integer AS settled,
            (state::text IN ('delivered', 'failed', 'expired', 'suppressed'))::integer AS final
        FROM n WHERE campaign_run_id IS NOT NULL
        UNION ALL
        SELECT campaign_run_id,
            -(state::text IN ('accepted', 'unknown', 'delivered', 'failed', 'expired',
                              'suppressed'))::integer,
            -(state::text IN ('delivered', 'failed', 'expired', 'suppressed'))::integer
        FROM o WHERE campaign_run_id IS NOT NULL
    ) d
    GROUP BY run_id HAVING sum(settled) <> 0 OR sum(final) <> 0;
    RETURN NULL;
END $$;
CREATE TRIGGER campaign_run_tally AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT
    EXECUTE FUNCTION campaign_run_tally();

-- Runs from before this migration: those released or cancelled more than a day ago are taken
-- as finished (no event: their campaign.finished went out at release), the others are
-- tallied from their messages once, and the scheduler finishes them.
UPDATE campaign_runs SET finished_at = COALESCE(released_at, created_at),
    state = CASE WHEN state = 'cancelled' THEN 'cancelled' ELSE 'finished' END
WHERE state <> 'paused' AND COALESCE(released_at, created_at) < now() - interval '1 day'
  AND (released_at IS NOT NULL OR state = 'cancelled');
INSERT INTO campaign_run_tallies (run_id, settled, final)
SELECT m.campaign_run_id,
    count(*) FILTER (WHERE m.state::text IN ('accepted', 'unknown', 'delivered', 'failed',
                                             'expired', 'suppressed')),
    count(*) FILTER (WHERE m.state::text IN ('delivered', 'failed', 'expired', 'suppressed'))
FROM messages m JOIN campaign_runs r ON r.id = m.campaign_run_id
WHERE r.finished_at IS NULL
GROUP BY m.campaign_run_id;

-- campaign.finished: once, when the scheduler records the run's end, with its counts (it was
-- written at release, while messages were still being sent).
DROP TRIGGER webhook_runs ON campaign_runs;
DROP FUNCTION webhook_runs_finished();
CREATE FUNCTION webhook_run_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF webhook_subscribed(NEW.tenant_id, 'campaign.finished') THEN
        INSERT INTO webhook_outbox (tenant_id, type, subject, payload)
        SELECT NEW.tenant_id, 'campaign.finished', NULL,
            jsonb_build_object('type', 'campaign.finished',
                'timestamp', webhook_utc(clock_timestamp()),
                'data', jsonb_build_object('tenant_id', NEW.tenant_id, 'campaign_run_id', NEW.id,
                    'campaign_id', NEW.campaign_id, 'state', NEW.state,
                    'released_at', NEW.released_at, 'finished_at', NEW.finished_at,
                    'counts', COALESCE(NEW.counts, '{}'::jsonb),
                    'released', COALESCE(sum(w.released), 0),
                    'held_out', COALESCE(sum(w.held_out), 0),
                    'cut_at_deadline', COALESCE(sum(w.expired), 0)))
        FROM campaign_waves w WHERE w.run_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_run_finished AFTER UPDATE OF finished_at ON campaign_runs
    FOR EACH ROW WHEN (OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL)
    EXECUTE FUNCTION webhook_run_finished();

-- campaign.at_risk: once per zone and run, when the scheduler first projects the zone to
-- finish after its deadline.
CREATE FUNCTION webhook_wave_at_risk() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parent campaign_runs;
BEGIN
    SELECT * INTO parent FROM campaign_runs WHERE id = NEW.run_id;
    IF webhook_subscribed(parent.tenant_id, 'campaign.at_risk') THEN
        INSERT INTO webhook_outbox (tenant_id, type, subject, payload)
        VALUES (parent.tenant_id, 'campaign.at_risk', NULL,
            jsonb_build_object('type', 'campaign.at_risk',
                'timestamp', webhook_utc(clock_timestamp()),
                'data', jsonb_build_object('tenant_id', parent.tenant_id, 'campaign_run_id', parent.id,
                    'campaign_id', parent.campaign_id, 'time_zone', NEW.time_zone,
                    'deadline_at', NEW.deadline_at, 'at', NEW.at_risk_at)
                    || COALESCE(NEW.at_risk_projection, '{}'::jsonb)));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_wave_at_risk AFTER UPDATE OF at_risk_at ON campaign_waves
    FOR EACH ROW WHEN (OLD.at_risk_at IS NULL AND NEW.at_risk_at IS NOT NULL)
    EXECUTE FUNCTION webhook_wave_at_risk();

-- A campaign's deadline is a hard cut-off (issue 22, items 1 and 8).
--
-- on_deadline: 'expire' (the default) stops the run at each wave's deadline: chunks carry it
-- as their messages' expires_at, the sender expires what it still holds (reason 'deadline'),
-- and the scheduler releases nothing of a wave past it; 'send_late' sends after it (the
-- behaviour before this migration). Existing campaigns take the default.
ALTER TABLE campaigns ADD COLUMN on_deadline text NOT NULL DEFAULT 'expire'
    CHECK (on_deadline IN ('expire', 'send_late'));

-- Recipients of a wave the scheduler did not release because its deadline had passed
-- (holdouts excluded: they are counted in held_out as before). Counted, not written as message
-- rows: a 5M-recipient run cut early must not insert millions of rows to say so.
ALTER TABLE campaign_waves ADD COLUMN expired integer NOT NULL DEFAULT 0 CHECK (expired >= 0);

-- Campaigns send on the bulk lane only: geo skipped the bulk cap and fair share and gave a
-- campaign the 30-minute geo TTL. Existing geo (or other non-bulk) campaigns are converted to
-- bulk here. A later lane for small triggered campaigns (transactional) widens the check.
UPDATE campaigns SET lane = 'bulk' WHERE lane <> 'bulk';
ALTER TABLE campaigns ADD CONSTRAINT campaigns_lane_bulk CHECK (lane = 'bulk');

-- Look-ahead contact budget (issue 22, item 5): a campaign marked `priority: reserved` reserves
-- its audience's per-recipient daily cap slot for its send day (in each recipient's zone), so
-- geo offers and other campaigns see the slot as used until the campaign's message takes it.
--
-- The reservations themselves are Redis bitmaps, one per (tenant, local send date, run), keyed
-- by recipient id (sender.reservations); this table is their durable bookkeeping: how far the
-- scheduler has filled them (keyset cursor over the audience), the dates written (to drop them
-- when the run is cancelled), how many recipients were reserved and how many geo offers the
-- reservations held back (the marketer's count in the campaign stats).

ALTER TABLE campaigns ADD COLUMN priority text NOT NULL DEFAULT 'normal'
    CHECK (priority IN ('normal', 'reserved'));

-- A tenant may turn reservations off (they are on by default for reserved campaigns).
ALTER TABLE tenants ADD COLUMN reserve_caps boolean NOT NULL DEFAULT true;

CREATE TABLE cap_reservations (
    run_id     bigint PRIMARY KEY REFERENCES campaign_runs(id) ON DELETE CASCADE,
    tenant_id  bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    state      text NOT NULL DEFAULT 'filling' CHECK (state IN ('filling', 'filled', 'released')),
    cursor_id  bigint NOT NULL DEFAULT 0,       -- last audience recipient id written (keyset)
    base_id    bigint,                          -- bit offset 0 (the audience's first id)
    days       date[] NOT NULL DEFAULT '{}',    -- local send dates with a bitmap of this run
    reserved   integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    held_back  integer NOT NULL DEFAULT 0 CHECK (held_back >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cap_reservations_filling ON cap_reservations (run_id) WHERE state = 'filling';

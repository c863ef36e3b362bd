-- Geo targeting (issue 3): promotion policy (hours, weekdays, trigger, nearby mode, cooldown,
-- budget, interest weights) and each store's GPS accuracy threshold.

ALTER TABLE stores
    ADD COLUMN accuracy_max_m real NOT NULL DEFAULT 100 CHECK (accuracy_max_m > 0);

ALTER TABLE promotions
    ADD COLUMN hours_start      time,
    ADD COLUMN hours_end        time,
    ADD COLUMN weekdays         smallint[] NOT NULL DEFAULT '{1,2,3,4,5,6,7}',
    ADD COLUMN trigger          text NOT NULL DEFAULT 'entry' CHECK (trigger IN ('entry', 'dwell')),
    ADD COLUMN dwell_minutes    integer CHECK (dwell_minutes > 0),
    ADD COLUMN max_gap_minutes  integer NOT NULL DEFAULT 30 CHECK (max_gap_minutes > 0),
    ADD COLUMN nearby_m         integer NOT NULL DEFAULT 0 CHECK (nearby_m >= 0),
    ADD COLUMN cooldown_minutes integer NOT NULL DEFAULT 1440 CHECK (cooldown_minutes >= 0),
    ADD COLUMN budget           integer CHECK (budget > 0),
    ADD COLUMN interest_weights jsonb NOT NULL DEFAULT '{}',
    ADD CONSTRAINT promotions_hours CHECK ((hours_start IS NULL) = (hours_end IS NULL)
                                           AND (hours_start IS NULL OR hours_start <> hours_end)),
    ADD CONSTRAINT promotions_dwell CHECK ((trigger = 'dwell') = (dwell_minutes IS NOT NULL));

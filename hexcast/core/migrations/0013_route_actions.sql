-- Operator actions on provider routes (drain, disable, enable): who, when, why. The live
-- state is in Redis (sender/route_control.py); this is the audit trail.
CREATE TABLE route_actions (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    route   text NOT NULL,
    action  text NOT NULL CHECK (action IN ('drain', 'disable', 'enable')),
    actor   text NOT NULL,
    reason  text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_actions_route ON route_actions (route, id);

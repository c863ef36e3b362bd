-- The operator audit log: what an operator did outside a tenant's own API (create a tenant,
-- and later pause, cancel, requeue, resolve): who, when, what, on what, why. Provider route
-- actions keep their own table (route_actions, 0013); GET /v1/admin/audit lists both.
CREATE TABLE operator_actions (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL,
    reason  text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'
);

-- A tenant's own sender ids (its numbers or brand name): used on routes whose account may send
-- from them (`tenant_senders = true` in the routes file); each recipient always gets the same one.
ALTER TABLE tenants ADD COLUMN sender_ids text[] CHECK (
    cardinality(sender_ids) BETWEEN 1 AND 10
    AND array_to_string(sender_ids, ',') ~ '^((\+[1-9][0-9]{1,14}|[A-Za-z0-9]{1,11})(,|$))+$');

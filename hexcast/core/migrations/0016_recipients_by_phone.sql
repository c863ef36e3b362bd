-- A reply over SMPP names only the handset's number and ours: the tenants it answers are those
-- with that number among their recipients (on a route serving several tenants).
CREATE INDEX recipients_phone ON recipients (phone);

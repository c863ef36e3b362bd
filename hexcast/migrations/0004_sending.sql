-- Sender: finding rows a crashed or stalled sender left behind (queued/sending), per lane.
CREATE INDEX messages_lane_pending ON messages (lane, id)
    WHERE state IN ('queued', 'sending');

-- Longest message a tenant may send, in segments: checked when a message is created.
ALTER TABLE tenants ADD COLUMN max_segments integer NOT NULL DEFAULT 6
    CHECK (max_segments BETWEEN 1 AND 10);

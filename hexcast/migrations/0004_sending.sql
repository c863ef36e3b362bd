-- Sender: finding rows a crashed or stalled sender left behind (queued/sending), per lane.
CREATE INDEX messages_lane_pending ON messages (lane, id)
    WHERE state IN ('queued', 'sending');

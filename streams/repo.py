"""SQL of the visit history."""

from __future__ import annotations

from collections.abc import Sequence

import h3

from hexcast.core.db import Conn
from streams.models import VisitRecord

__all__ = ["ARCHIVE_RESOLUTION", "insert_visits"]

#: Resolution of the stored cell: about 0.1 km² hexagons, a city block or two.
ARCHIVE_RESOLUTION = 9


async def insert_visits(conn: Conn, *, records: Sequence[VisitRecord]) -> int:
    """Store every event once (a replayed record changes nothing); returns rows inserted."""
    rows = [
        (r.tenant_id, e.event_id, r.user_id, e.lat, e.lng, e.accuracy_m,
         h3.latlng_to_cell(e.lat, e.lng, ARCHIVE_RESOLUTION), e.ts, r.received_at)
        for r in records
        for e in r.events
    ]
    if not rows:
        return 0
    columns = list(zip(*rows, strict=True))
    result: str = await conn.execute(
        """
        INSERT INTO visits (tenant_id, event_id, user_id, lat, lng, accuracy_m, cell, ts, received_at)
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $5::float8[],
                             $6::real[], $7::text[], $8::timestamptz[], $9::timestamptz[])
        ON CONFLICT (tenant_id, event_id) DO NOTHING
        """,
        *[list(c) for c in columns],
    )
    return int(result.rsplit(" ", 1)[-1])

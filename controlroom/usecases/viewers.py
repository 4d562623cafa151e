"""Reading the audience pulse: each creator's recent viewer samples, for the wall's sparklines."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from controlroom.adapters.db import tenant_transaction_async

MAX_MINUTES = 24 * 60

# One query for every creator of the company: creators without samples get an empty series.
_SERIES = """
SELECT c.id AS creator_id,
       extract(epoch FROM s.sampled_at)::bigint AS at,
       CASE WHEN s.live THEN s.viewers END AS viewers
FROM creators c
LEFT JOIN viewer_samples s
       ON s.creator_id = c.id AND s.sampled_at >= now() - make_interval(mins => %s)
ORDER BY c.id, s.sampled_at
"""


async def recent_samples(
    conn: psycopg.AsyncConnection[Any], company: uuid.UUID, minutes: int
) -> dict[str, list[tuple[int, int | None]]]:
    """creator id -> [(epoch seconds, viewers, or None while offline), ...], oldest first."""
    if not 1 <= minutes <= MAX_MINUTES:
        raise ValueError("minutes out of range")
    series: dict[str, list[tuple[int, int | None]]] = {}
    async with tenant_transaction_async(conn, company):
        cur = await conn.execute(_SERIES, (minutes,))
        for row in await cur.fetchall():
            samples = series.setdefault(str(row["creator_id"]), [])
            if row["at"] is not None:
                samples.append((int(row["at"]), row["viewers"]))
    return series

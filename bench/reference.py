"""The reference bulk pipeline: one plain asyncio process, no broker, no framework.

PostgreSQL keyset pages → Redis dedupe (one Lua call per page) → provider-sim batch call →
``unnest … ON CONFLICT`` message log insert. The scenario's sender pipeline is compared with it.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import redis.asyncio as aioredis

from bench.common import Timer
from sender.keys import bulk_key

__all__ = ["DEDUPE", "reference_pipeline"]

#: SET NX every key; returns the indexes (1-based) of the keys that were new.
DEDUPE = """
local fresh = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, 1, 'NX', 'EX', ARGV[1]) then fresh[#fresh + 1] = i end
end
return fresh
"""

_INSERT = """
INSERT INTO messages (message_key, tenant_id, lane, phone, body, campaign_run_id, state,
                      client_ref, provider_message_id, sent_at)
SELECT k, $2, 'bulk', p, $3, $4, 'accepted', k, pm, now()
FROM unnest($1::text[], $5::text[], $6::text[]) AS x(k, p, pm)
ON CONFLICT (message_key) DO NOTHING
"""


async def _pages(pool: asyncpg.Pool, tenant_id: int, queue: asyncio.Queue[list[asyncpg.Record] | None],
                 workers: int) -> None:
    after = 0
    async with pool.acquire() as conn:
        while rows := await conn.fetch(
            "SELECT id, phone FROM recipients WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT 1000",
            tenant_id, after,
        ):
            await queue.put(list(rows))
            after = rows[-1]["id"]
    for _ in range(workers):
        await queue.put(None)


async def _work(queue: asyncio.Queue[list[asyncpg.Record] | None], pool: asyncpg.Pool,
                redis: aioredis.Redis, http: httpx.AsyncClient, run_id: int, tenant_id: int,
                prefix: str) -> int:
    script = redis.register_script(DEDUPE)
    sent = 0
    while (rows := await queue.get()) is not None:
        keys = [bulk_key(campaign_run_id=run_id, recipient_id=r["id"]) for r in rows]
        fresh = [int(i) - 1 for i in await script(keys=[prefix + k for k in keys], args=[86400])]
        batch = [{"client_ref": keys[i], "to": rows[i]["phone"], "body": "Black Friday"} for i in fresh]
        response = await http.post("/v1/batches", json={"messages": batch})
        response.raise_for_status()
        results = response.json()["results"]
        async with pool.acquire() as conn:
            await conn.execute(_INSERT, [r["client_ref"] for r in results], tenant_id, "Black Friday",
                               run_id, [rows[i]["phone"] for i in fresh],
                               [r.get("provider_message_id") for r in results])
        sent += len(results)
    return sent


async def reference_pipeline(dsn: str, redis_url: str, sim_url: str, token: str, *,
                             tenant_id: int, run_id: int, workers: int = 4) -> tuple[int, float]:
    """Send the tenant's whole audience once; returns (sent, recipients/s)."""
    pool = await asyncpg.create_pool(dsn, min_size=workers + 1, max_size=workers + 1)
    redis = aioredis.Redis.from_url(redis_url)
    queue: asyncio.Queue[list[asyncpg.Record] | None] = asyncio.Queue(maxsize=workers * 2)
    prefix = f"bench:ref:{run_id}:"
    try:
        async with httpx.AsyncClient(base_url=sim_url, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            timer = Timer()
            producer = asyncio.create_task(_pages(pool, tenant_id, queue, workers))
            sent = await asyncio.gather(*(_work(queue, pool, redis, http, run_id, tenant_id, prefix)
                                          for _ in range(workers)))
            await producer
            return sum(sent), timer.rate(sum(sent))
    finally:
        doomed: list[bytes] = []
        async for key in redis.scan_iter(match=prefix + "*", count=10_000):
            doomed.append(key)
            if len(doomed) >= 5_000:
                await redis.unlink(*doomed)
                doomed.clear()
        if doomed:
            await redis.unlink(*doomed)
        await redis.aclose()
        await pool.close()

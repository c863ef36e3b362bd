"""``/metrics`` in the Prometheus text format: sends, segments, 429s, breakers, DLQ, deferrals,
opt-out-to-suppression latency.

Counts come from PostgreSQL (the source of truth, so every process's work is included) and
from counters the senders keep in Redis (429s, dead letters, breaker states) and the offsets
`hexcast dlq replay` replayed (DLQ depth).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from hexcast.core.cache import Keys
from hexcast.core.db import Conn

__all__ = ["BINDS_TTL_S", "binds_key", "breaker_key", "counter_key", "render_metrics",
           "replayed_key"]

BINDS_TTL_S = 15
"""How long a sender's report of its live SMPP binds counts (it reports every 5 s): a process
that died stops counting within this."""


def counter_key(keys: Keys, name: str) -> str:
    """A counter (a string key), or for labelled counters a hash of label → count, so reading
    them never scans the keyspace."""
    return keys("metrics", name)


def breaker_key(keys: Keys) -> str:
    return keys("metrics", "breaker")


def binds_key(keys: Keys, route: str, process: str) -> str:
    """One sender process's count of live binds to an SMPP route (a string with a TTL)."""
    return keys("metrics", "smpp_binds", route, process)


def replayed_key(keys: Keys) -> str:
    """The set of send.dlq offsets ``hexcast dlq replay`` has replayed (depth = written − these)."""
    return keys("metrics", "dlq_replayed")


async def _message_lines(conn: Conn) -> list[str]:
    rows = await conn.fetch(
        "SELECT lane::text, state::text, count(*) AS n, COALESCE(sum(segments), 0) AS segs"
        " FROM messages GROUP BY 1, 2 ORDER BY 1, 2"
    )
    lines = ["# TYPE hexcast_messages gauge"]
    lines += [f'hexcast_messages{{lane="{r["lane"]}",state="{r["state"]}"}} {r["n"]}' for r in rows]
    lines.append("# TYPE hexcast_segments_sent gauge")
    lines += [f'hexcast_segments_sent{{lane="{r["lane"]}"}} {r["segs"]}' for r in rows
              if r["state"] in ("accepted", "delivered")]
    deferred = sum(r["n"] for r in rows if r["state"] == "deferred")
    lines += ["# TYPE hexcast_deferred gauge", f"hexcast_deferred {deferred}"]
    return lines


async def _optout_lines(conn: Conn) -> list[str]:
    row = await conn.fetchrow(
        "SELECT count(*) AS n, COALESCE(max(extract(epoch FROM e.at - o.opted_out_at)), 0) AS mx,"
        " COALESCE(avg(extract(epoch FROM e.at - o.opted_out_at)), 0) AS av"
        " FROM message_events e JOIN messages m ON m.id = e.message_id"
        " JOIN opt_outs o ON o.tenant_id = m.tenant_id AND o.phone = m.phone"
        " WHERE e.to_state = 'suppressed' AND e.reason = 'opted out'"
        " AND e.at >= o.opted_out_at AND e.at > now() - interval '1 hour'"
    )
    summary = row if row is not None else {"n": 0, "mx": 0, "av": 0}
    return [
        "# TYPE hexcast_optout_to_suppression_seconds summary",
        f'hexcast_optout_to_suppression_seconds{{quantile="1"}} {float(summary["mx"]):.3f}',
        f'hexcast_optout_to_suppression_seconds_avg {float(summary["av"]):.3f}',
        f"hexcast_optout_to_suppression_seconds_count {summary['n']}",
    ]


async def _redis_lines(client: aioredis.Redis, keys: Keys) -> list[str]:
    lines = ["# TYPE hexcast_provider_429_total counter"]
    limited = await client.hgetall(counter_key(keys, "429"))
    for name, count in sorted((_text(k), int(v)) for k, v in limited.items()):
        lines.append(f'hexcast_provider_429_total{{provider="{name}"}} {count}')
    letters = int(await client.get(counter_key(keys, "dlq_letters")) or 0)
    replayed = int(await client.scard(replayed_key(keys)))
    lines += ["# TYPE hexcast_dlq_letters_total counter", f"hexcast_dlq_letters_total {letters}",
              "# TYPE hexcast_dlq_depth gauge", f"hexcast_dlq_depth {max(0, letters - replayed)}"]
    lines.append("# TYPE hexcast_breaker_state gauge")
    states = {_text(k): _text(v) for k, v in (await client.hgetall(breaker_key(keys))).items()}
    for name, state in sorted(states.items()):
        for option in ("closed", "open", "half_open"):
            value = 1 if state == option else 0
            lines.append(f'hexcast_breaker_state{{provider="{name}",state="{option}"}} {value}')
    return lines + await _binds_lines(client, keys)


async def _binds_lines(client: aioredis.Redis, keys: Keys) -> list[str]:
    """Live SMPP binds per route, summed over the sender processes that reported lately: 0 when
    none is bound (the route is unavailable and its traffic fails over)."""
    found: dict[str, int] = {}
    prefix = keys("metrics", "smpp_binds", "")
    async for key in client.scan_iter(match=f"{prefix}*", count=500):
        route = _text(key)[len(prefix):].rsplit(":", 1)[0]
        found[route] = found.get(route, 0) + int(await client.get(key) or 0)
    lines = ["# TYPE hexcast_smpp_live_binds gauge"]
    return lines + [f'hexcast_smpp_live_binds{{provider="{route}"}} {n}'
                    for route, n in sorted(found.items())]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def render_metrics(conn: Conn, client: aioredis.Redis, keys: Keys) -> str:
    lines = await _message_lines(conn) + await _optout_lines(conn) + await _redis_lines(client, keys)
    return "\n".join(lines) + "\n"

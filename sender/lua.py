"""Redis scripts of the sender, as named constants."""

from __future__ import annotations

__all__ = ["RECIPIENT_CAPS", "TOKEN_BUCKET"]

#: Token buckets shared by every worker, taken from together atomically.
#: KEYS[1..n] = bucket hashes; then, if ARGV[4] is 1, a pause key (set with a TTL after a 429:
#: while it lives nothing is granted and wait_ms is its remaining TTL, so every worker honours
#: the provider's Retry-After); then, if ARGV[5] is not empty, the fair-share activity set.
#: ARGV = requested, n, minimum, has_pause (0|1), fair member ('' = none), fair window (ms),
#: then rate_i (tokens/s) and burst_i (max tokens) for each bucket.
#: Fair share: the member (a tenant) is recorded in the activity set (sorted by last request
#: time, pruned to the window) and bucket n is that member's share: its rate and burst are
#: divided by the number of members active within the window. So when k tenants want the same
#: capacity, each is held to 1/k of it, and a tenant alone gets all of it.
#: Grants the same whole number of tokens from every bucket: up to ``requested``, never more
#: than the emptiest bucket holds, and nothing below ``minimum`` (a message's segments are
#: never split). Returns {granted, wait_ms}: wait_ms is how long until every bucket holds
#: ``minimum`` tokens. Time comes from the Redis server, so all hosts agree.
#: Use: provider account rate, the bulk lane's capped share of it, a tenant's fair share of
#: that, a campaign's pacing rate, all in one call.
TOKEN_BUCKET = """
local requested = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local minimum = tonumber(ARGV[3])
local member = ARGV[5]
local k = n
if ARGV[4] == '1' then
  k = k + 1
  local paused = redis.call('PTTL', KEYS[k])
  if paused > 0 then return {0, paused} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sharers = 1
if member ~= '' then
  local window = tonumber(ARGV[6])
  local active = KEYS[k + 1]
  redis.call('ZADD', active, now, member)
  redis.call('ZREMRANGEBYSCORE', active, '-inf', now - window)
  redis.call('PEXPIRE', active, window + 1000)
  sharers = math.max(1, redis.call('ZCARD', active))
end
local rates, bursts, tokens = {}, {}, {}
local granted = requested
for i = 1, n do
  rates[i] = tonumber(ARGV[5 + 2 * i])
  bursts[i] = tonumber(ARGV[6 + 2 * i])
  if i == n and sharers > 1 then
    rates[i] = rates[i] / sharers
    bursts[i] = math.max(minimum, bursts[i] / sharers)
  end
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local have = tonumber(state[1])
  local ts = tonumber(state[2])
  if have == nil or ts == nil then
    have = bursts[i]
    ts = now
  end
  have = math.min(bursts[i], have + math.max(0, now - ts) * rates[i] / 1000)
  tokens[i] = have
  granted = math.min(granted, math.floor(have))
end
if granted < minimum then granted = 0 end
local wait_ms = 0
for i = 1, n do
  local left = tokens[i] - granted
  if granted < requested and left < minimum then
    wait_ms = math.max(wait_ms, math.ceil((minimum - left) * 1000 / rates[i]))
  end
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(bursts[i] * 1000 / rates[i]) + 1000)
end
if granted < requested and wait_ms < 1 then wait_ms = 1 end
return {granted, wait_ms}
"""

#: Per-recipient caps for a whole chunk in one call. KEYS[1..n] = recipient i's sorted set of
#: send times (member = message key); KEYS[n+1..] = cap reservation hashes of (tenant, local
#: date) (``sender.reservations``: run id → bit offset 0; the run's bitmap is ``<hash>:<run>``,
#: in the same hash-tag slot). ARGV[1] = a JSON array with one array per recipient: message
#: key, local day start (ms), next local day start (ms), max per local day, max per rolling
#: 24 h, min spacing (ms), the position of its reservation hash after KEYS[n] (0: none), its
#: recipient id, and the campaign run of the message (0: none) (one string rather than 9
#: arguments a recipient, which redis-py packed one by one).
#: Reservations count toward the local day's cap: a message holding no reservation of its own
#: is held while sends today + other runs' reservations reach the cap. A message whose run
#: reserved the recipient takes its reserved slot (other reservations do not hold it, so
#: reservations beyond the cap go to the first to send) and clears its bit when counted.
#: Returns two numbers per recipient: 0 = allowed (and counted), else ms until it would be;
#: then the run whose reservation alone held it (0: none, or held by a cap).
#: A message already counted (a retry after a crash) is allowed again without counting twice.
RECIPIENT_CAPS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local day = 86400000
local out = {}
local checks = cjson.decode(ARGV[1])
local n = #checks
local reserving = {}
local function reserved(pos, rid, own)
  local index = KEYS[n + pos]
  local runs = reserving[pos]
  if runs == nil then
    runs = redis.call('HGETALL', index)
    reserving[pos] = runs
  end
  local others, by, mine, at = 0, 0, nil, 0
  for j = 1, #runs, 2 do
    local offset = rid - tonumber(runs[j + 1])
    if offset >= 0 and redis.call('GETBIT', index .. ':' .. runs[j], offset) == 1 then
      if tonumber(runs[j]) == own then
        mine, at = index .. ':' .. runs[j], offset
      else
        others = others + 1
        if by == 0 then by = tonumber(runs[j]) end
      end
    end
  end
  return others, by, mine, at
end
for i = 1, n do
  local key = KEYS[i]
  local c = checks[i]
  local member, day_start, next_day = c[1], c[2], c[3]
  local max_day, max_24h, spacing = c[4], c[5], c[6]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - day)
  local wait, by, mine, at = 0, 0, nil, 0
  if not redis.call('ZSCORE', key, member) then
    local in_24h = redis.call('ZCARD', key)
    if in_24h >= max_24h then
      local oldest = redis.call('ZRANGE', key, in_24h - max_24h, in_24h - max_24h, 'WITHSCORES')
      wait = math.max(wait, tonumber(oldest[2]) + day - now)
    end
    local today = redis.call('ZCOUNT', key, day_start, '+inf')
    if today >= max_day then
      wait = math.max(wait, next_day - now)
    end
    local last = redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES')
    if last[2] and now - tonumber(last[2]) < spacing then
      wait = math.max(wait, tonumber(last[2]) + spacing - now)
    end
    if wait == 0 and c[7] > 0 then
      local others
      others, by, mine, at = reserved(c[7], c[8], c[9])
      if mine == nil and today + others >= max_day then
        wait = math.max(1, next_day - now)
      else
        by = 0
      end
    end
    if wait == 0 then
      redis.call('ZADD', key, now, member)
      redis.call('PEXPIRE', key, day + 60000)
      if mine then redis.call('SETBIT', mine, at, 0) end
    end
  end
  out[2 * i - 1] = wait
  out[2 * i] = by
end
return out
"""

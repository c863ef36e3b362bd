"""Redis scripts of the matcher, as named constants."""

from __future__ import annotations

__all__ = ["GEO_GATE", "RELEASE_BUDGET"]

#: Cooldowns, per-user caps and promotion budgets for every candidate send of one record, in
#: one call. Candidates come grouped by visit (the event that triggered them), best first.
#: KEYS, 4 per candidate: cooldown key (user, store, promotion), the user's sorted set of geo
#: send times (member = message key), the promotion's budget set (message keys counted), the
#: budget's released set (message keys that ended suppressed/expired/failed).
#: ARGV[1] = max sends per visit; ARGV[2] = a JSON array with one array per candidate: visit
#: number, message key, trigger token (the triggering event id), cooldown ms, local day start
#: ms, next local day start ms, max per local day, max per 24 h, budget (0 = none). (One
#: string instead of 8 arguments a candidate: redis-py packed each argument on its own, a
#: large share of the matcher's time in this call.)
#: Returns one code per candidate: 0 send, 1 cooldown, 2 cap, 3 budget, 4 visit already served.
#: A redelivered record (same trigger token, same message key) is allowed again and counted once.
GEO_GATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local day = 86400000
local per_visit = tonumber(ARGV[1])
local served = {}
local out = {}
local cands = cjson.decode(ARGV[2])
for i = 1, #cands do
  local k = (i - 1) * 4
  local c = cands[i]
  local visit, member, token, cooldown = c[1], c[2], c[3], c[4]
  local day_start, next_day, max_day, max_24h, budget = c[5], c[6], c[7], c[8], c[9]
  local code = 0
  local held = false
  if (served[visit] or 0) >= per_visit then
    code = 4
  elseif cooldown > 0 then
    local cur = redis.call('GET', KEYS[k + 1])
    if cur and cur ~= token then code = 1 end
    held = cur == token
  end
  local counted = false
  if code == 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 2], '-inf', now - day)
    counted = redis.call('ZSCORE', KEYS[k + 2], member) ~= false
    if not counted then
      local in_day = redis.call('ZCOUNT', KEYS[k + 2], day_start, '(' .. next_day)
      if in_day >= max_day or redis.call('ZCARD', KEYS[k + 2]) >= max_24h then code = 2 end
    end
  end
  local released = false
  if code == 0 and budget > 0 then
    released = redis.call('SISMEMBER', KEYS[k + 4], member) == 1
    if not released and redis.call('SISMEMBER', KEYS[k + 3], member) == 0
        and redis.call('SCARD', KEYS[k + 3]) >= budget then
      code = 3
    end
  end
  if code == 0 then
    served[visit] = (served[visit] or 0) + 1
    if cooldown > 0 and not held then redis.call('SET', KEYS[k + 1], token, 'PX', cooldown) end
    if not counted then
      redis.call('ZADD', KEYS[k + 2], now, member)
      redis.call('PEXPIRE', KEYS[k + 2], day + 3600000)
    end
    if budget > 0 and not released then
      redis.call('SADD', KEYS[k + 3], member)
      redis.call('PEXPIRE', KEYS[k + 3], 90 * day)
    end
  end
  out[i] = code
end
return out
"""

#: Give budget back for geo messages that ended without reaching the handset. KEYS, 2 per
#: message: the promotion's budget set and its released set; ARGV[i] = message key i.
#: Idempotent: a message key is released once, however often its event is redelivered.
#: Returns, per message, 1 if a slot was given back, else 0.
RELEASE_BUDGET = """
local out = {}
for i = 1, #ARGV do
  local budget, released = KEYS[2 * i - 1], KEYS[2 * i]
  out[i] = 0
  if redis.call('SADD', released, ARGV[i]) == 1 then
    redis.call('PEXPIRE', released, 90 * 86400000)
    out[i] = redis.call('SREM', budget, ARGV[i])
  end
end
return out
"""

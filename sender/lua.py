"""Redis scripts of the sender, as named constants."""

from __future__ import annotations

__all__ = ["TOKEN_BUCKET"]

#: Token bucket shared by every worker. KEYS[1] = bucket hash.
#: ARGV = rate (tokens/s), burst (max tokens), requested.
#: Grants up to ``requested`` whole tokens (possibly fewer, never more than are available)
#: and returns {granted, wait_ms}: wait_ms is how long until one more token exists.
#: Time comes from the Redis server, so workers on different hosts agree.
#: Optional KEYS[2] = pause key (set with a TTL after a 429): while it lives nothing is
#: granted and wait_ms is its remaining TTL, so every worker honours the Retry-After.
TOKEN_BUCKET = """
if KEYS[2] then
  local paused = redis.call('PTTL', KEYS[2])
  if paused > 0 then return {0, paused} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local requested = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local granted = math.min(requested, math.floor(tokens))
if granted < 0 then granted = 0 end
tokens = tokens - granted
local wait_ms = 0
if granted < requested then
  wait_ms = math.ceil((1 - (tokens - math.floor(tokens))) * 1000 / rate)
  if wait_ms < 1 then wait_ms = 1 end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait_ms}
"""

--- A Redis backend for wxhw.ratelimit, so several processes and hosts acting
-- for one merchant share one budget (20 QPS and 50 000 a day for
-- /v3/iotmanage/devices). It rides the one wxhw.redis connection (hiredis;
-- cosockets inside nginx); each take is one atomic script that
-- reads the clock of the Redis server, so hosts with drifting clocks agree.
--
--   local limiter = require("wxhw.pay.limiter").shared{ host = "127.0.0.1", port = 6379 }
--   local pay = wxhw.pay.new{ ..., limiter = limiter }
local ratelimit = require "wxhw.ratelimit"
local redis = require "wxhw.redis"

local M = {}

local Redis = {}
Redis.__index = Redis

-- KEYS: bucket hash, day counter, day exhausted flag.
-- ARGV: rate (0 = none), burst, daily (0 = none).
-- Returns {1, count} or {0, "rate"|"daily", wait_seconds}.
local take = redis.script [[
local rate, burst, daily = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 'daily', '0'} end
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
if daily > 0 and count >= daily then return {0, 'daily', '0'} end
if rate > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local b = redis.call('HMGET', KEYS[1], 'tokens', 't')
  local tokens, last = tonumber(b[1]) or burst, tonumber(b[2]) or now
  if now > last then tokens = math.min(burst, tokens + (now - last) * rate) end
  if tokens < 1 then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 't', tostring(now))
    return {0, 'rate', tostring((1 - tokens) / rate)}
  end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 't', tostring(now))
  redis.call('EXPIRE', KEYS[1], 3600)
end
count = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 172800)
return {1, count}]]

--- A backend on a hiredis connection (conn:command). prefix separates
-- deployments sharing a Redis (default "wxhw:rl:").
function M.redis(conn, prefix)
  if type(conn) ~= "userdata" and type(conn) ~= "table" then error("limiter.redis: connection required", 2) end
  return setmetatable({ conn = conn, prefix = prefix or "wxhw:rl:" }, Redis)
end

function Redis:_keys(key, day)
  local p = self.prefix .. key
  return p .. ":bucket", p .. ":day:" .. day, p .. ":exhausted:" .. day
end

function Redis:take(key, rule, _, day)
  local k1, k2, k3 = self:_keys(key, day)
  local args = { tostring(rule.rate or 0), tostring(rule.burst or math.max(1, rule.rate or 1)), tostring(rule.daily or 0) }
  local res, err = take(self.conn, 3, k1, k2, k3, args[1], args[2], args[3])
  if res == nil then
    -- Redis down: fail closed for this call (a "rate" wait), never flood the API
    return false, "rate", 0.05, err
  end
  if res[1] == 1 then return true, tonumber(res[2]) end
  return false, res[2], tonumber(res[3]) or 0
end

function Redis:exhaust(key, day)
  local _, _, k3 = self:_keys(key, day)
  self.conn:command("SET", k3, "1", "EX", "172800")
end

function Redis:count(key, day)
  local _, k2 = self:_keys(key, day)
  return tonumber(self.conn:command("GET", k2) or nil) or 0
end

--- A wxhw.ratelimit limiter on Redis: opts host, port, db, password, timeout,
-- prefix, or conn (an existing connection); now/sleep as for ratelimit.new.
-- Returns the limiter or nil, err (Redis unreachable).
function M.shared(opts)
  opts = opts or {}
  local conn, err = redis.connect(opts)
  if not conn then return nil, err end
  return ratelimit.new{ backend = M.redis(conn, opts.prefix), now = opts.now, sleep = opts.sleep }
end

return M

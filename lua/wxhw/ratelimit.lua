--- Token-bucket rate limiter with a daily counter, applied before a request
-- is sent. Keys are whatever the caller chooses (the client uses
-- namespace .. host .. path); rules are `{ rate = per second, burst = n,
-- daily = n }`, each field optional.
--
--   local ratelimit = require "wxhw.ratelimit"
--   local rl = ratelimit.new{ now = f, sleep = f, backend = ratelimit.memory() }
--   local ok, err = rl:acquire(key, { rate = 20, burst = 20, daily = 50000 }, max_wait)
--   rl:exhaust(key)     -- the server said the daily quota is gone (45009)
--   rl:count(key)       -- calls counted today
--
-- A backend is an object with `take(key, rule, now, day)` →
--   true, count | false, "rate"|"daily", wait_seconds
-- and `exhaust(key, day)`, `count(key, day)`. It must be atomic for its
-- scope: `memory()` is per Lua state, `shdict(dict)` is per nginx instance
-- (all workers); a Redis backend can implement the same three calls.
local clock = require "wxhw.clock"
local errors = require "wxhw.errors"

local M = {}

--- Days roll over at midnight Beijing time (UTC+8), when WeChat quotas reset.
M.DAY_OFFSET = 8 * 3600

--- Per-API defaults, keyed by "<product> <path>" (documented limits only;
-- api_getstableaccesstoken, api_sendhardwaredevicemessage, iotmanage-devices.html).
M.DEFAULTS = {
  ["mp /cgi-bin/stable_token"] = { rate = 10000 / 60, burst = 200, daily = 500000 },
  ["mp /cgi-bin/message/device/subscribe/send"] = { daily = 10000000 },
  ["pay /v3/iotmanage/devices"] = { rate = 20, burst = 20, daily = 50000 },
}

local function day_of(now, offset)
  return math.floor((now + offset) / 86400)
end

local function seconds_to_next_day(now, offset)
  return (day_of(now, offset) + 1) * 86400 - offset - now
end

-- In-process backend: one table per limiter.
local Memory = {}
Memory.__index = Memory

function M.memory()
  return setmetatable({ state = {} }, Memory)
end

function Memory:_get(key, rule, now, day)
  local s = self.state[key]
  if not s then
    s = { tokens = rule.burst or rule.rate or 0, t = now, day = day, count = 0 }
    self.state[key] = s
  end
  if s.day ~= day then s.day, s.count, s.exhausted = day, 0, nil end
  return s
end

function Memory:take(key, rule, now, day)
  local s = self:_get(key, rule, now, day)
  if s.exhausted or (rule.daily and s.count >= rule.daily) then return false, "daily", 0 end
  if rule.rate then
    local burst = rule.burst or math.max(1, rule.rate)
    local elapsed = now - s.t
    if elapsed > 0 then s.tokens = math.min(burst, s.tokens + elapsed * rule.rate) end
    s.t = now
    if s.tokens < 1 then return false, "rate", (1 - s.tokens) / rule.rate end
    s.tokens = s.tokens - 1
  end
  s.count = s.count + 1
  return true, s.count
end

function Memory:exhaust(key, day)
  local s = self.state[key]
  if not s then
    s = { tokens = 0, t = 0, day = day, count = 0 }
    self.state[key] = s
  end
  s.day, s.exhausted = day, true
end

function Memory:count(key, day)
  local s = self.state[key]
  return (s and s.day == day) and s.count or 0
end

--- Backend on an nginx `lua_shared_dict`, shared by all workers: fixed
-- windows of burst/rate seconds holding `burst` calls each (atomic `incr`)
-- instead of a smooth bucket, plus the daily counter. Over any span T that
-- admits at most rate * T + 2 * burst calls, and never more than rate per
-- second on average (a one-second window of `burst` calls would allow burst
-- per second).
local Shdict = {}
Shdict.__index = Shdict

function M.shdict(dict)
  if type(dict) == "string" then dict = clock.shared_dict(dict) end
  if not dict then error("ratelimit.shdict: no such lua_shared_dict", 2) end
  return setmetatable({ dict = dict }, Shdict)
end

-- Other workers take at the same moment, so every step is one atomic dict
-- call and a counter is only ever raised past its limit by a call that is
-- refused anyway: the rate window is taken before the day's count, so a call
-- refused for the rate never raises the count another worker checks (it was
-- refused "daily" while quota was left), and a call refused for the day
-- raised a count that was already used up.
function Shdict:take(key, rule, now, day)
  local d = self.dict
  if d:get("x:" .. day .. ":" .. key) then return false, "daily", 0 end
  local dk = "d:" .. day .. ":" .. key
  if rule.daily and (d:get(dk) or 0) >= rule.daily then return false, "daily", 0 end
  local wk
  if rule.rate then
    local cap = math.max(1, math.floor(rule.burst or rule.rate))
    local w = cap / rule.rate
    local idx = math.floor(now / w)
    wk = "s:" .. idx .. ":" .. key
    local n = d:incr(wk, 1, 0, w + 1)
    if not n then return false, "rate", 0.05 end -- the dict failed: refuse rather than flood
    if n > cap then return false, "rate", math.max(0.001, (idx + 1) * w - now) end
  end
  local count = d:incr(dk, 1, 0, 90000)
  if not count then
    if wk then d:incr(wk, -1) end
    return false, "rate", 0.05
  end
  if rule.daily and count > rule.daily then
    d:incr(dk, -1)
    if wk then d:incr(wk, -1) end
    return false, "daily", 0
  end
  return true, count
end

function Shdict:exhaust(key, day)
  self.dict:set("x:" .. day .. ":" .. key, true, 90000)
end

function Shdict:count(key, day)
  return self.dict:get("d:" .. day .. ":" .. key) or 0
end

local Limiter = {}
Limiter.__index = Limiter

--- o.now, o.sleep: clock (defaults: wxhw.clock's wall clock, and its sleep
-- that never blocks an nginx worker); o.backend: memory(); o.day_offset:
-- seconds east of UTC for the daily reset.
function M.new(o)
  o = o or {}
  return setmetatable({
    backend = o.backend or M.memory(),
    now = o.now or clock.now,
    sleep = o.sleep or clock.sleep,
    day_offset = o.day_offset or M.DAY_OFFSET,
  }, Limiter)
end

--- Takes one call's worth of quota, waiting up to max_wait seconds (default 0)
-- for the bucket to refill. Returns true, or nil and a `quota` error with
-- reason "daily" or "rate" and retry_after.
function Limiter:acquire(key, rule, max_wait)
  if not rule then return true end
  max_wait = max_wait or 0
  local waited = 0
  while true do
    local now = self.now()
    local ok, why, wait = self.backend:take(key, rule, now, day_of(now, self.day_offset))
    if ok then return true end
    if why == "daily" then
      return errors.fail("quota", "daily quota for " .. key .. " is used up (" .. tostring(rule.daily or "server said 45009")
        .. " calls); it resets at midnight UTC+8", {
          reason = "daily", class = "daily_quota", retryable = false,
          retry_after = seconds_to_next_day(now, self.day_offset) })
    end
    if waited + wait > max_wait then
      return errors.fail("quota", ("rate limit for %s (%g/s) reached"):format(key, rule.rate), {
        reason = "rate", class = "rate", retryable = true, retry_after = wait })
    end
    -- at least 1 ms: ngx.sleep rounds below that to 0 without moving ngx.now
    wait = math.max(wait, 0.001)
    self.sleep(wait)
    waited = waited + wait
  end
end

function Limiter:exhaust(key)
  self.backend:exhaust(key, day_of(self.now(), self.day_offset))
end

function Limiter:count(key)
  return self.backend:count(key, day_of(self.now(), self.day_offset))
end

M.day_of = day_of
M.seconds_to_next_day = seconds_to_next_day

return M

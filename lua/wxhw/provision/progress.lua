--- Progress on a terminal: devices done of total, rate, ETA, failures; one
-- line redrawn at most a few times a second. Silent unless enabled.
local clock = require "wxhw.clock"

local M = {}
local P = {}
P.__index = P

function M.new(o)
  o = o or {}
  return setmetatable({ total = o.total or 0, done = 0, failed = 0, enabled = o.enabled, out = o.out or io.stderr,
    start = clock.monotonic(), last = 0, interval = o.interval or 0.25, label = o.label or "provision" }, P)
end

local function fmt_time(s)
  if s ~= s or s == math.huge or s < 0 then return "--:--" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%d:%02d:%02d"):format(math.floor(s / 3600), math.floor(s % 3600 / 60), s % 60) end
  return ("%02d:%02d"):format(math.floor(s / 60), s % 60)
end
M.fmt_time = fmt_time

--- The status line for the current counts.
function P:line()
  local el = clock.monotonic() - self.start
  local rate = el > 0 and self.done / el or 0
  local eta = rate > 0 and (self.total - self.done) / rate or math.huge
  local pct = self.total > 0 and self.done * 100 / self.total or 100
  return ("%s %d/%d (%.1f%%) %.0f dev/s ETA %s failed %d"):format(self.label, self.done, self.total, pct,
    rate, fmt_time(eta), self.failed)
end

function P:update(done, failed)
  self.done, self.failed = done, failed or self.failed
  if not self.enabled then return end
  local now = clock.monotonic()
  if now - self.last < self.interval and self.done < self.total then return end
  self.last = now
  self.out:write("\r\27[K", self:line())
  self.out:flush()
end

function P:finish()
  if self.enabled then self.out:write("\r\27[K", self:line(), "\n"); self.out:flush() end
end

return M

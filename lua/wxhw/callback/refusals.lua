--- A rate-limited log of refused pushes: one line per product and reason
-- per `interval` seconds (60) in this process (each nginx worker keeps its
-- own), with how many like it were not logged since the last line.
--
--   local log = require("wxhw.callback.refusals").new{ write = function(line) ... end }
--   log:note("mp", "stale_timestamp", 403)
--   --> wxhw callback: refused mp push (403 stale_timestamp)
--   --> wxhw callback: refused mp push (403 stale_timestamp); 41 more since the last line
--
-- A line holds the product, the status and the reason code only: never the
-- query (msg_signature, nonce, timestamp), a header or the body.
--
-- Inside nginx the default writer logs at WARN from a zero-delay timer: a
-- line logged in a request's context carries nginx's `request: "POST
-- /wx/push?...msg_signature=..."`, the query with the signature.
local clock = require "wxhw.clock"
local errors = require "wxhw.errors"

local M = {}
M.__index = M

M.INTERVAL = 60

local function ngx_writer(ngx_)
  local function write_now(premature, line) if not premature then ngx_.log(ngx_.WARN, line) end end
  return function(line)
    if ngx_.get_phase() == "timer" then return write_now(false, line) end
    local ok = ngx_.timer.at(0, write_now, line)
    if not ok then ngx_.log(ngx_.WARN, line) end -- no timer free: the line matters more
  end
end

--- The writer used when none is given: nginx's error log inside nginx,
-- nothing elsewhere (a program passes its own, e.g. examples/gateway.lua).
function M.default_writer()
  local ngx_ = clock.ngx()
  if ngx_ and ngx_.log and ngx_.timer then return ngx_writer(ngx_) end
  return nil
end

--- opts: write(line) (default_writer()), interval (seconds, 60),
-- clock (seconds; wxhw.clock.time: ngx.time in nginx, else os.time).
function M.new(opts)
  opts = opts or {}
  local write = opts.write
  if write == nil then write = M.default_writer() end
  return setmetatable({ write = write, interval = opts.interval or M.INTERVAL,
                        clock = opts.clock or clock.time,
                        last = {}, suppressed = {} }, M)
end

-- Writes `line` unless one under the same key went out less than
-- `interval` seconds ago (then counts it for the next line).
local function limited(self, key, line)
  if not self.write then return end
  local now = self.clock()
  local last = self.last[key]
  if last and now - last < self.interval then
    self.suppressed[key] = (self.suppressed[key] or 0) + 1
    return
  end
  local n = self.suppressed[key] or 0
  self.last[key], self.suppressed[key] = now, 0
  if n > 0 then line = line .. ("; %d more since the last line"):format(n) end
  pcall(self.write, line)
end

--- Notes one refusal; writes a line unless one for the same product and
-- reason went out less than `interval` seconds ago.
function M:note(kind, reason, status)
  if not self.write then return end
  limited(self, tostring(kind) .. " " .. tostring(reason),
          ("wxhw callback: refused %s push (%s %s)"):format(tostring(kind), tostring(status), tostring(reason)))
end

--- Notes a handler that failed (raised, or returned what cannot be sent):
-- the error's first 300 bytes, the handler's own words, at most one line per
-- product per interval.
function M:failure(kind, message)
  if not self.write then return end
  limited(self, tostring(kind) .. " \0failed",
          ("wxhw callback: %s handler failed: %s"):format(tostring(kind), errors.cut(message, 300)))
end

local shared
--- One logger per process for the endpoints that get no `log_refusals`.
function M.default()
  shared = shared or M.new()
  return shared
end

return M

--- WeChat's daily quotas roll over at midnight Beijing time (16:00 UTC), and
-- so do wxhw's and the emulator's counters; WeCom's per-user report limit
-- is per hour. A spec that counts calls within one period must not straddle
-- its end, whatever time CI runs it.
--
--   local periods = require "support.quota_periods"
--   periods.clear_of_midnight(30)      -- host clock: >= 30 s of the day left
--   periods.fresh_emulator_day(e)      -- emulator clock: 1 h into its next day
--   periods.fresh_emulator_hour(e)     -- emulator clock: 1 min into its next hour
local socket = require "socket"
local ratelimit = require "wxhw.ratelimit"

local M = {}

--- Seconds until the next midnight UTC+8 at time t (default: now).
function M.seconds_left(t)
  return ratelimit.seconds_to_next_day(t or socket.gettime(), ratelimit.DAY_OFFSET)
end

--- Waits until the current day has at least `need` seconds left (waits at
-- most `need` seconds); for specs on the host clock.
function M.clear_of_midnight(need)
  local left = M.seconds_left()
  if left < need then socket.sleep(left + 0.05) end
end

-- Moves the emulator's clock forward to `into` seconds past the start of its
-- next period of `span` seconds (periods start at multiples of span - offset).
local function next_period(e, span, offset, into)
  local now = e.control("/__emulator/clock").now
  local start = (math.floor((now + offset) / span) + 1) * span - offset
  e.control("/__emulator/clock", { set = start + into })
end

--- For specs that advance the emulator clock by up to 23 h within one day.
-- Not for specs that sign requests with the host's time (Pay checks the skew);
-- call it before issuing tokens the spec relies on.
function M.fresh_emulator_day(e) next_period(e, 86400, ratelimit.DAY_OFFSET, 3600) end

function M.fresh_emulator_hour(e) next_period(e, 3600, 0, 60) end

return M

--- WeChat's daily quotas roll over at midnight Beijing time (16:00 UTC), and
-- so do wxhw's and the emulator's counters. A spec that counts calls within
-- one day must not straddle that moment, whatever time CI runs it.
--
--   local china_day = require "support.china_day"
--   china_day.clear_of_midnight(30)   -- host clock: >= 30 s of the day left
--   china_day.fresh_emulator_day(e)   -- emulator clock: 1 h into its next day
local socket = require "socket"
local OFFSET = require("wxhw.ratelimit").DAY_OFFSET

local M = {}

--- Seconds until the next midnight UTC+8 at time t (default: now).
function M.seconds_left(t)
  return 86400 - ((t or socket.gettime()) + OFFSET) % 86400
end

--- Waits until the current day has at least `need` seconds left (waits at
-- most `need` seconds); for specs on the host clock.
function M.clear_of_midnight(need)
  local left = M.seconds_left()
  if left < need then socket.sleep(left + 0.05) end
end

--- Moves an emulator's clock forward to one hour into its next day, so a
-- spec that advances the clock by up to 23 h stays within one day. Not for
-- specs that sign requests with the host's time (Pay checks the skew).
function M.fresh_emulator_day(e)
  local now = e.control("/__emulator/clock").now
  local next_day = math.floor((now + OFFSET) / 86400) + 1
  e.control("/__emulator/clock", { set = next_day * 86400 - OFFSET + 3600 })
end

return M

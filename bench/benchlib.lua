-- Shared by the Lua halves of the benchmarks (LUA_PATH includes ./bench/?.lua and ./spec/?.lua).
local clock = require("wxhw.clock").monotonic

local M = {}

--- Operations per CPU second of fn, run for about `secs` of wall time.
-- CPU time is the divisor because `openssl speed` (the usual reference) uses
-- user CPU time unless -elapsed, and busy neighbours then skew neither side.
function M.rate(fn, secs)
  local n, t0, c0 = 0, clock(), os.clock()
  local deadline = t0 + secs
  repeat
    for _ = 1, 16 do fn() end
    n = n + 16
  until clock() >= deadline
  return n / (os.clock() - c0)
end

M.read = require("support.files").read

return M

--- Does a parser's cost grow faster than its input? For the timed
-- adversarial specs (spec/hostile_input_spec.lua) and the Lua fuzz run
-- (fuzz/lua_parsers.lua).
--
--   local linear = require "support.linear"
--   local r = linear.check(function(s) parse(s) end, function(n) return ("<a>"):rep(n / 3) end)
--   (make(n) may return a second value, the input's size, when it is not a string)
--   r.ok, r.why, r.small_s, r.big_s, r.ratio
--
-- CPU time (os.clock, so other processes' load counts little), best of
-- several rounds, each repeating the call until it has taken 2 ms. The sizes
-- climb 16 KB, 64 KB, 1 MB and stop at the first step whose time per byte
-- grew more than the bound, so a quadratic parser fails at 64 KB in seconds
-- instead of running for minutes at 1 MB.
local M = {}

M.SMALL, M.BIG = 65536, 1048576
M.STEP_BOUND = 3 -- per-byte growth allowed from 16 KB to 64 KB (quadratic: 4)
M.BOUND = 4      -- per-byte growth allowed from 64 KB to 1 MB (quadratic: 16)

local clock = os.clock

-- Seconds per call of f(input): best of up to `rounds`, within ~0.3 s of rounds.
local function per_call(f, input, rounds)
  local best, spent = math.huge, 0
  for r = 1, rounds do
    local reps, t0, t = 0, clock(), 0
    repeat
      f(input)
      reps = reps + 1
      t = clock() - t0
    until t >= 0.002
    best = math.min(best, t / reps)
    spent = spent + t
    if r >= 2 and spent > 0.3 then break end
  end
  return best
end
M.per_call = per_call

--- f(input) is timed on make(n) for n = 16 KB, 64 KB and 1 MB. Returns
-- { ok, why, small_s (64 KB), big_s (1 MB), ratio (per-byte growth 64 KB -> 1 MB) }.
function M.check(f, make, opts)
  opts = opts or {}
  local rounds = opts.rounds or 5
  local function measure(n)
    local input, size = make(n) -- size: for an input that is not a string
    size = size or #input
    collectgarbage()
    return per_call(f, input, rounds) / size, size
  end
  local tiny = measure(16384)
  local small, nsmall = measure(M.SMALL)
  if small / tiny > (opts.step_bound or M.STEP_BOUND) then
    -- once more before failing: at a few microseconds a call, one burst of
    -- load or a trace compiled mid-measure moved the ratio past the bound
    -- (seen in CI, LuaJIT); a parser that is not linear fails again
    tiny = math.min(tiny, measure(16384))
    small = math.min(small, measure(M.SMALL))
  end
  local r = { small_s = small * nsmall }
  if small / tiny > (opts.step_bound or M.STEP_BOUND) then
    r.ok, r.ratio = false, small / tiny
    r.why = ("time per byte grew %.1fx from 16 KB to 64 KB (%.3f ms at 64 KB): not linear; 1 MB not tried")
      :format(small / tiny, r.small_s * 1e3)
    return r
  end
  local big, nbig = measure(M.BIG)
  if big / small > (opts.bound or M.BOUND) then big = math.min(big, measure(M.BIG)) end
  r.big_s, r.ratio = big * nbig, big / small
  r.ok = r.ratio <= (opts.bound or M.BOUND)
  if not r.ok then
    r.why = ("time per byte grew %.1fx from 64 KB (%.3f ms) to 1 MB (%.3f ms): not linear")
      :format(r.ratio, r.small_s * 1e3, r.big_s * 1e3)
  end
  return r
end

return M

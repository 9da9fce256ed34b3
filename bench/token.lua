-- Cache-hit cost of manager:token() (memory and shm stores) against a plain
-- Lua table read plus os.time() in the same process, alternating rounds and
-- keeping the best of each. Prints one line per measure.
local core = require "wxhw.core"
local token = require "wxhw.token"

local secs, path = tonumber(arg[1]) or 2, arg[2]
local now = core.clock.monotonic

local function rate(fn)
  -- calibrate a batch, then run batches for `secs`
  local n, t0 = 0, now()
  local batch = 10000
  repeat
    fn(batch)
    n = n + batch
  until now() - t0 >= secs
  return (now() - t0) / n
end

local t = { token = "ACCESS_TOKEN" }
local sink -- luacheck: ignore 231 (written only, so the loop has work to do)
local function reference(n)
  for _ = 1, n do
    local _ = os.time()
    sink = t.token
  end
end

local function fetch() return "ACCESS_TOKEN_" .. string.rep("x", 120), 7200 end
local mem = assert(token.new{ key = "bench:memory", store = "memory", fetch = fetch })
local shm = assert(token.new{ key = "bench:shm", store = "shm", store_path = path, fetch = fetch })
assert(mem:token() and shm:token())

local function loop(m)
  return function(n)
    for _ = 1, n do sink = m:token() end
  end
end

-- Many short interleaved rounds, best of each: a busy neighbour then hurts
-- the reference and the subjects alike.
local best = { ref = math.huge, mem = math.huge, shm = math.huge }
local rounds = 8
secs = secs / rounds
for _ = 1, rounds do
  best.ref = math.min(best.ref, rate(reference))
  best.mem = math.min(best.mem, rate(loop(mem)))
  best.shm = math.min(best.shm, rate(loop(shm)))
end
local rt = (jit and "luajit" or _VERSION:gsub("Lua ", "lua"))
print(string.format("%s %.1f %.1f %.1f", rt, best.ref * 1e9, best.mem * 1e9, best.shm * 1e9))

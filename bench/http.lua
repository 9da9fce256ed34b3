-- Helper of bench/http (see there).
local nginx = require "support.nginx"
local http = require "wxhw.http"
local socket = require "socket"

local smoke = arg[1] == "--smoke"
local secs = tonumber(os.getenv("WXHW_BENCH_SECS")) or (smoke and 1 or 2)
local rounds = tonumber(os.getenv("WXHW_BENCH_ROUNDS")) or (smoke and 1 or 5)

local srv = assert(nginx.start{
  workers = 1,
  -- one connection may carry every request of a run; the body is nginx's
  -- connection serial number, so the client can count connections
  server_block = [[keepalive_requests 100000000; location = /b { return 200 "$connection"; }]],
})

local tick
do
  local p = io.popen("getconf CLK_TCK 2>/dev/null")
  tick = tonumber(p:read("*l") or "") or 100
  p:close()
end

-- wrk's own figure (requests/s over its run, wall time), and its CPU time
-- (user+sys, read from the wrapping shell's cutime/cstime once wrk is reaped)
local function wrk(conns)
  local p = io.popen(("sh -c 'wrk -t1 -c%d -d%ds %s/b 2>&1; echo CPU $(cut -d\" \" -f16,17 /proc/$$/stat)'"):format(
    conns, secs, srv.base_url))
  local out = p:read("*a")
  p:close()
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local total = tonumber(out:match("(%d+) requests in"))
  local ut, st = out:match("CPU (%d+) (%d+)")
  if not rps or not total or not ut then error("wrk failed: " .. out) end
  return rps, (tonumber(ut) + tonumber(st)) / tick / total
end

local url = srv.base_url .. "/b"

-- Both sides are timed on the wall clock, as wrk is; CPU is os.clock()
-- (process user+sys).
local function sequential(engine)
  local c = http.new{ engine = engine }
  local req = { url = url }
  local conns, n = {}, 0
  local t0, c0 = socket.gettime(), os.clock()
  local deadline = t0 + secs
  repeat
    for _ = 1, 100 do
      local r = assert(c:request(req))
      conns[r.body] = true
    end
    n = n + 100
  until socket.gettime() >= deadline
  local rps, cpu = n / (socket.gettime() - t0), (os.clock() - c0) / n
  local distinct = 0
  for _ in pairs(conns) do distinct = distinct + 1 end
  c:close()
  return rps, cpu, distinct, n
end

local function batch(engine)
  local c = http.new{ max_connections = 64, engine = engine }
  local reqs = {}
  for i = 1, 32 * 20 do reqs[i] = { url = url } end
  local conns, n, failed = {}, 0, 0
  local t0, c0 = socket.gettime(), os.clock()
  local deadline = t0 + secs
  repeat
    for _, r in ipairs(c:batch(reqs, { concurrency = 32 })) do
      if r.status == 200 then conns[r.body] = true else failed = failed + 1 end
    end
    n = n + #reqs
  until socket.gettime() >= deadline
  local rps, cpu = n / (socket.gettime() - t0), (os.clock() - c0) / n
  local distinct = 0
  for _ in pairs(conns) do distinct = distinct + 1 end
  c:close()
  return rps, cpu, distinct, n, failed
end

-- Rounds alternate the four runs; each side keeps its best throughput and its
-- lowest CPU per request, so a burst of load from elsewhere on the machine
-- hurts whichever run it lands on, not one side systematically.
-- s/b: the default engine (direct for this plain HTTP/1.1 URL); cs/cb: the
-- same runs with engine = "curl", the full libcurl path, as a reference.
local best = { w1 = 0, s = 0, w32 = 0, b = 0, cs = 0, cb = 0 }
local cpu = { w1 = math.huge, s = math.huge, w32 = math.huge, b = math.huge, cs = math.huge, cb = math.huge }
local seq_conns, seq_n, b_conns, b_n, b_failed
local function keep(k, rps, c)
  best[k] = math.max(best[k], rps)
  cpu[k] = math.min(cpu[k], c)
end
local ok, err = pcall(function()
  for _ = 1, rounds do
    local rps, c
    keep("w1", wrk(1))
    rps, c, seq_conns, seq_n = sequential()
    keep("s", rps, c)
    keep("cs", sequential("curl"))
    keep("w32", wrk(32))
    rps, c, b_conns, b_n, b_failed = batch()
    keep("b", rps, c)
    local crps, ccpu, _, _, cfailed = batch("curl")
    if cfailed > 0 then error(("engine=curl batch: %d request(s) failed"):format(cfailed)) end
    keep("cb", crps, ccpu)
  end
end)
srv:stop()
if not ok then error(err, 0) end

print(("%d round(s) of %ds, best of each side; CPU = client user+sys per request (lowest)"):format(rounds, secs))
local function report(name, w, o, t, cw, co, extra)
  local r = w / o
  print(("%-34s wxhw %7.0f/s  wrk %7.0f/s  ratio %.3f (target >= %.2f) %s\n%-34s CPU wxhw %.1f us  wrk %.1f us  %s"):format(
    name, w, o, r, t, r >= t and "ok" or "BELOW TARGET", "", cw * 1e6, co * 1e6, extra))
end
report("sequential request vs wrk -t1 -c1", best.s, best.w1, 0.8, cpu.s, cpu.w1,
  ("connections reused: %s (%d connection(s) for %d requests)"):format(seq_conns == 1 and "yes" or "NO", seq_conns, seq_n))
report("batch(c=32) vs wrk -t1 -c32", best.b, best.w32, 0.7, cpu.b, cpu.w32,
  ("connections reused: %s (%d connection(s) for %d requests, %d failed)"):format(
    b_conns <= 64 and "yes" or "NO", b_conns, b_n, b_failed))
print(("%-34s sequential %.0f/s ratio %.3f (CPU %.1f us)  batch(c=32) %.0f/s ratio %.3f (CPU %.1f us)"):format(
  "reference: engine=\"curl\"", best.cs, best.cs / best.w1, cpu.cs * 1e6, best.cb, best.cb / best.w32, cpu.cb * 1e6))

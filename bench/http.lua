-- Helper of bench/http (see there).
local nginx = require "support.nginx"
local http = require "wxhw.http"
local socket = require "socket"

local smoke = arg[1] == "--smoke"
local secs = tonumber(os.getenv("WXHW_BENCH_SECS")) or (smoke and 1 or 5)
local rounds = smoke and 1 or 3

local srv = assert(nginx.start{
  workers = 1,
  -- one connection may carry every request of a run; the body is nginx's
  -- connection serial number, so the client can count connections
  server_block = [[keepalive_requests 100000000; location = /b { return 200 "$connection"; }]],
})

local function wrk(conns)
  local p = io.popen(("wrk -t1 -c%d -d%ds %s/b 2>&1"):format(conns, secs, srv.base_url))
  local out = p:read("*a")
  p:close()
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  if not rps then error("wrk failed: " .. out) end
  return rps
end

local url = srv.base_url .. "/b"

local function sequential()
  local c = http.new{}
  local req = { url = url }
  local conns, n = {}, 0
  local t0 = socket.gettime()
  local deadline = t0 + secs
  repeat
    for _ = 1, 100 do
      local r = assert(c:request(req))
      conns[r.body] = true
    end
    n = n + 100
  until socket.gettime() >= deadline
  local rps = n / (socket.gettime() - t0)
  local distinct = 0
  for _ in pairs(conns) do distinct = distinct + 1 end
  c:close()
  return rps, distinct, n
end

local function batch()
  local c = http.new{ max_connections = 64 }
  local reqs = {}
  for i = 1, 32 * 20 do reqs[i] = { url = url } end
  local conns, n, failed = {}, 0, 0
  local t0 = socket.gettime()
  local deadline = t0 + secs
  repeat
    for _, r in ipairs(c:batch(reqs, { concurrency = 32 })) do
      if r.status == 200 then conns[r.body] = true else failed = failed + 1 end
    end
    n = n + #reqs
  until socket.gettime() >= deadline
  local rps = n / (socket.gettime() - t0)
  local distinct = 0
  for _ in pairs(conns) do distinct = distinct + 1 end
  c:close()
  return rps, distinct, n, failed
end

local best = { w1 = 0, s = 0, w32 = 0, b = 0 }
local seq_conns, seq_n, b_conns, b_n, b_failed
local ok, err = pcall(function()
  for _ = 1, rounds do
    best.w1 = math.max(best.w1, wrk(1))
    local rps
    rps, seq_conns, seq_n = sequential()
    best.s = math.max(best.s, rps)
    best.w32 = math.max(best.w32, wrk(32))
    rps, b_conns, b_n, b_failed = batch()
    best.b = math.max(best.b, rps)
  end
end)
srv:stop()
if not ok then error(err, 0) end

local function report(name, w, o, t, extra)
  local r = w / o
  print(("%-34s wxhw %9.0f/s  wrk %9.0f/s  ratio %.3f  (target >= %.2f) %s  %s"):format(
    name, w, o, r, t, r >= t and "ok" or "BELOW TARGET", extra))
end
report("sequential request vs wrk -t1 -c1", best.s, best.w1, 0.8,
  ("connections reused: %s (%d connection(s) for %d requests)"):format(seq_conns == 1 and "yes" or "NO", seq_conns, seq_n))
report("batch(c=32) vs wrk -t1 -c32", best.b, best.w32, 0.7,
  ("connections reused: %s (%d connection(s) for %d requests, %d failed)"):format(
    b_conns <= 64 and "yes" or "NO", b_conns, b_n, b_failed))

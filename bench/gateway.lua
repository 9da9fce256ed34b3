-- bench/gateway driver (see bench/gateway).
--
-- Fairness: one nginx (2 workers unless WXHW_BENCH_WORKERS, lua_code_cache
-- on, access_log off, listen ... reuseport) serves every location; every location is driven by the
-- same wrk client (1 thread, 32 connections) replaying the same POST bodies
-- through the same Lua script, so client-side costs (request()/response()
-- callbacks, body bytes) are equal on both sides of the ratio. Rounds are
-- interleaved (static, push, ...) and the best round of each is kept, which
-- damps the noise of a shared machine.
-- The nginx workers' CPU time per request (from /proc) is printed too: it is
-- the cost of the request inside nginx, much less dependent on how busy the
-- machine is; "of it kernel" is the workers' system time (the socket work, ~4-6
-- us for every location), the rest is nginx and Lua in user space.
-- The wrk script builds every request once, in init() (wrk.format), so wrk's
-- higher CPU per push than per static request (~13 against ~8 us) is not
-- request building: at a third of the rate each epoll_wait returns fewer
-- ready connections. Without the response() callback wrk costs ~1.5 us less
-- per static request and ~3 us less per push, which leaves the ratio where it
-- was (within the noise), so the callback stays for the non-200 count.
-- The measured push location de-duplicates in the shm kv table
-- (wxhw.kv.shm, a file under /dev/shm every worker maps), sized for
-- every push of the run; "push, lua_shared_dict dedup" is the same handler on
-- a lua_shared_dict (sized likewise: a reply entry takes a 512-byte slab
-- chunk; an undersized dict evicts on every insert, see docs/callback.md).
local nginx = require "support.nginx"
local msgcrypt = require "wxhw.msgcrypt"
local cjson = require "cjson"

if arg[1] == "--stages" then
  -- per-stage costs inside one nginx worker (bench/gateway_stages.lua)
  local srv = assert(nginx.start{ http_block = "lua_shared_dict wxhw_callbacks 256m;\n  lua_shared_dict wxhw_metrics 1m;\n",
    server_block = "location = /stages { content_by_lua_file " .. nginx.repo .. "/bench/gateway_stages.lua; }" })
  local shm = "/dev/shm/wxhw-bench-stages-" .. srv.pid .. ".kv"
  local p = io.popen("curl -s '" .. srv.base_url .. "/stages?dict=wxhw_callbacks&shm=" .. shm .. "&metrics=wxhw_metrics&n=" .. (arg[2] or "20000") ..
    (os.getenv("PROFILE") and ("&profile=" .. os.getenv("PROFILE")) or "") .. "'")
  io.write(p:read("*a")); p:close()
  os.remove(shm)
  local elog = srv:error_log(); if #elog > 0 then io.stderr:write(elog:sub(1, 2000), "\n") end
  srv:stop()
  os.exit(0)
end

local smoke = arg[1] == "--smoke"
local secs = tonumber(os.getenv("WXHW_BENCH_SECS") or "") or (smoke and 2 or 5)
local rounds = tonumber(os.getenv("WXHW_BENCH_ROUNDS") or "") or (smoke and 1 or 3)
local conns = 32
-- nginx workers for every location (WXHW_BENCH_WORKERS; the same for both sides)
local workers = tonumber(os.getenv("WXHW_BENCH_WORKERS") or "") or 2
-- enough distinct pushes per round that every request is a new one: the
-- measured path is verify + decrypt + dispatch + encrypted reply
local N = secs * 30000
local TOKEN, KEY, APPID = "benchtoken", ("K"):rep(43), "wxbench000000001"

local tmp = io.popen("mktemp -d /tmp/wxhw-bench-gw.XXXXXX"):read("*l")
local SHM = "/dev/shm/" .. tmp:match("[^/]+$") .. ".kv"
-- the same handler with metrics on (wxhw.metrics, counters in a shared dict)
-- de-duplicates in a table of its own: the rounds replay the same pushes
local SHM_METRICS = "/dev/shm/" .. tmp:match("[^/]+$") .. "-metrics.kv"
-- replies here are ~200 bytes (an encrypted {errcode, errmsg}); every push of the run fits
local SHM_VALUE_BYTES = 256
local function sh(cmd) local p = io.popen(cmd .. " 2>&1"); local s = p:read("*a"); p:close(); return s end

-- distinct secure-mode pushes, as WeChat builds them; one file per round
local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
local ts = tostring(os.time())
for r = 1, rounds do
  local f = assert(io.open(("%s/pushes%d.txt"):format(tmp, r), "w"))
  for j = 1, N do
    local i = (r - 1) * N + j
    local plain = cjson.encode({ ToUserName = "gh_b", FromUserName = "o" .. i, CreateTime = tonumber(ts),
      MsgType = "event", Event = "bench_event", MsgId = "m" .. i, RoomId = "room" .. i })
    local nonce = tostring(100000 + i)
    local body, sig = mc:push_body(plain, "mp_json", ts, nonce, "gh_b")
    f:write("/push?timestamp=", ts, "&nonce=", nonce, "&encrypt_type=aes&msg_signature=", sig, "\t", body, "\n")
  end
  f:close()
end

-- Exactly-once accounting off the measured path: each worker counts the
-- dispatches of push i in its own byte of a file both map (MAP_SHARED), so
-- the handler costs one byte increment rather than shared-dict round trips
-- (which cost as much as the de-duplication store itself); the driver reads
-- the file after each run.
local TOTAL = rounds * N
local TALLY = tmp .. "/tally.bin"
do
  local f = assert(io.open(TALLY, "wb"))
  local zeros = ("\0"):rep(65536)
  for _ = 1, math.ceil(workers * TOTAL / 65536) do f:write(zeros) end
  f:close()
end

local srv = assert(nginx.start{
  workers = workers,
  -- a listening socket per worker (as examples/nginx.conf): without it the
  -- kernel woke whichever worker came first and all 32 of wrk's connections
  -- stayed on one, so a push location ran on one worker while the other idled
  reuseport = true,
  http_block = "lua_code_cache on;\n  lua_shared_dict wxhw_callbacks 256m;\n  lua_shared_dict wxhw_metrics 1m;\n" ..
    "  init_worker_by_lua_block {\n" ..
    -- JITV=1: LuaJIT's trace log of each worker, to /tmp/wxhw-jitv-<worker>.txt
    (os.getenv("JITV") and "    require('jit.v').start('/tmp/wxhw-jitv-' .. ngx.worker.id() .. '.txt')\n" or "") ..
    -- JITP=<jit.p mode>: a profile of each worker over the whole run, to /tmp/wxhw-jitp-<worker>.txt
    (os.getenv("JITP") and ("    require('jit.p').start(%q, '/tmp/wxhw-jitp-' .. ngx.worker.id() .. '.txt')\n")
      :format(os.getenv("JITP")) or "") ..
    "    local callback = require 'wxhw.callback'\n" ..
    "    local ffi = require 'ffi'\n" ..
    "    pcall(ffi.cdef, 'int open(const char *, int, int); int close(int); ' ..\n" ..
    "      'void *mmap(void *, size_t, int, int, int, long);')\n" ..
    ("    local fd = ffi.C.open(%q, 2, 0)\n"):format(TALLY) ..
    ("    local tally = ffi.cast('uint8_t *', ffi.C.mmap(nil, %d, 3, 1, fd, 0)) + ngx.worker.id() * %d - 1\n")
      :format(workers * TOTAL, TOTAL) ..
    "    ffi.C.close(fd)\n" ..
    ("    PUSH = callback.mini_program{ token = %q, encoding_aes_key = %q, appid = %q,\n"):format(TOKEN, KEY, APPID) ..
    ("      dedup = require('wxhw.callback.ngx').dedup{ shm = %q, entries = %d, value_bytes = %d },\n")
      :format(SHM, TOTAL, SHM_VALUE_BYTES) ..
    "      handlers = { bench_event = function(msg)\n" ..
    "        local i = tonumber(msg.MsgId:sub(2))\n" ..
    "        local v = tally[i]\n" ..
    "        if v < 255 then tally[i] = v + 1 end\n" ..
    "        return { errcode = 0, errmsg = 'ok' }\n" ..
    "      end } }\n" ..
    "    local reg = require('wxhw.metrics').new{ backend = assert(require('wxhw.metrics').ngx_shared('wxhw_metrics')) }\n" ..
    "    METRICS = reg:handler()\n" ..
    ("    PUSH_METRICS = callback.mini_program{ token = %q, encoding_aes_key = %q, appid = %q,\n"):format(TOKEN, KEY, APPID) ..
    ("      dedup = require('wxhw.callback.ngx').dedup{ shm = %q, entries = %d, value_bytes = %d },\n")
      :format(SHM_METRICS, TOTAL, SHM_VALUE_BYTES) ..
    "      on_event = require('wxhw.metrics.instruments').new(reg).on_event,\n" ..
    "      handlers = { bench_event = function() return { errcode = 0, errmsg = 'ok' } end } }\n" ..
    ("    PUSH_NODEDUP = callback.mini_program{ token = %q, encoding_aes_key = %q, appid = %q, dedup = false,\n"):format(TOKEN, KEY, APPID) ..
    "      handlers = { bench_event = function() return { errcode = 0, errmsg = 'ok' } end } }\n" ..
    ("    PUSH_DICT = callback.mini_program{ token = %q, encoding_aes_key = %q, appid = %q,\n"):format(TOKEN, KEY, APPID) ..
    "      dedup = require('wxhw.callback.ngx').dedup('wxhw_callbacks'),\n" ..
    "      handlers = { bench_event = function() return { errcode = 0, errmsg = 'ok' } end } }\n  }\n" ..
    (os.getenv("JITP") and "  exit_worker_by_lua_block { require('jit.p').stop() }\n" or ""),
  server_block = [[
    location = /push { content_by_lua_block { require("wxhw.callback.ngx").serve(PUSH) } }
    location = /push_nodedup { content_by_lua_block { require("wxhw.callback.ngx").serve(PUSH_NODEDUP) } }
    location = /push_dict { content_by_lua_block { require("wxhw.callback.ngx").serve(PUSH_DICT) } }
    location = /push_metrics { content_by_lua_block { require("wxhw.callback.ngx").serve(PUSH_METRICS) } }
    location = /metrics { content_by_lua_block { require("wxhw.callback.ngx").serve(METRICS) } }
    location = /static { return 200 "success"; }
    location = /lua { content_by_lua_block { ngx.req.read_body(); ngx.print("success") } }
  ]],
})

local WRK = [[
local threads, counter = {}, 0
local N_T = 1
function setup(thread) thread:set("id", counter); counter = counter + 1; threads[#threads + 1] = thread end
function init(args)
  local mine, i = {}, 0
  for line in io.lines(args[1]) do
    if i % N_T == id then
      local path, body = line:match("^([^\t]*)\t(.*)$")
      path = path:gsub("^/push", os.getenv("WRK_PATH"))
      mine[#mine + 1] = wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
    end
    i = i + 1
  end
  reqs, k, n, bad = mine, 0, 0, 0
end
function request() k = k % #reqs + 1; n = n + 1; return reqs[k] end
function response(status) if status ~= 200 then bad = bad + 1 end end
function done(summary, latency)
  local sent, bad_total = 0, 0
  for _, t in ipairs(threads) do
    local tn = t:get("n"); sent = sent + tn; bad_total = bad_total + t:get("bad")
  end
  local f = io.open(os.getenv("WRK_OUT"), "w")
  f:write(string.format("%d %d %d %.3f %.3f\n", summary.requests, bad_total, sent, latency:percentile(99) / 1000,
    latency:percentile(50) / 1000))
  f:close()
end
]]
local wf = assert(io.open(tmp .. "/push.lua", "w")); wf:write(WRK); wf:close()

-- CPU seconds used so far by the nginx workers (children of the master)
local TICK = tonumber(sh("getconf CLK_TCK")) or 100
local function workers_cpu()
  local total, sys = 0, 0
  for pid in sh("pgrep -P " .. srv.pid):gmatch("%d+") do
    local f = io.open("/proc/" .. pid .. "/stat")
    if f then
      local st = f:read("*a"); f:close()
      local rest = st:match("%) (.*)$")
      local fields = {}
      for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
      total = total + (tonumber(fields[12]) + tonumber(fields[13])) / TICK -- utime, stime
      sys = sys + tonumber(fields[13]) / TICK
    end
  end
  return total, sys
end

-- One wrk run. path: location; file: request bodies; plain: wrk without a
-- script (GET), the old reference. Returns a result table.
local function run(path, file, plain)
  local c0, s0 = workers_cpu()
  local cmd
  if plain then
    cmd = ("bash -c 'wrk -t1 -c%d -d%ds --latency %s%s; times'"):format(conns, secs, srv.base_url, path)
  else
    cmd = ("WRK_PATH=%s WRK_OUT=%s/out.txt bash -c 'wrk -t1 -c%d -d%ds --latency -s %s/push.lua %s%s -- %s; times'")
      :format(path, tmp, conns, secs, tmp, srv.base_url, path, file)
  end
  local out = sh(cmd)
  local c1, s1 = workers_cpu()
  local cpu = c1 - c0
  local r = { rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)")), out = out }
  assert(r.rps, out)
  -- `times`: second line = children's user and system time (wrk)
  local um, us, sm, ss = out:match("\n[%d.ms]+ [%d.ms]+\n(%d+)m([%d.]+)s (%d+)m([%d.]+)s")
  local wrk_cpu = um and (um * 60 + us + sm * 60 + ss) or 0
  if plain then
    r.total = tonumber(out:match("(%d+) requests in"))
    r.p99 = out:match("99%%%s+([%d%.]+%a+)")
    r.bad = 0
  else
    local res = io.open(tmp .. "/out.txt"):read("*l")
    local total, bad, sent, p99, p50 = res:match("(%d+) (%d+) (%d+) ([%d%.]+) ([%d%.]+)")
    r.total, r.bad, r.sent = tonumber(total), tonumber(bad), tonumber(sent)
    r.p99, r.p50 = tonumber(p99) .. "ms", tonumber(p50) .. "ms"
  end
  r.cpu_us = cpu / r.total * 1e6
  r.sys_us = (s1 - s0) / r.total * 1e6
  r.wrk_us = wrk_cpu / r.total * 1e6
  return r
end

-- dispatches of pushes first..last (all workers): distinct, duplicated
local function tally(first, last)
  local f = assert(io.open(TALLY, "rb"))
  local s = f:read("*a")
  f:close()
  local byte, distinct, dups = string.byte, 0, 0
  for i = first, last do
    local n = 0
    for w = 0, workers - 1 do n = n + byte(s, w * TOTAL + i) end
    if n > 0 then distinct = distinct + 1 end
    if n > 1 then dups = dups + 1 end
  end
  return distinct, dups
end

local NAMES = { "static", "lua", "push", "push_metrics", "push_dict", "push_nodedup", "static_get" }
local best = {}
local metrics_answered = 0
local ok, err = pcall(function()
  local expect_distinct, lost_total, dup_total, bad_total = 0, 0, 0, 0
  for r = 1, rounds do
    local file = ("%s/pushes%d.txt"):format(tmp, r)
    local res = {}
    res.static = run("/static", file)
    res.push = run("/push", file)
    local dispatched, dups = tally((r - 1) * N + 1, r * N)
    res.lua = run("/lua", file)
    res.push_metrics = run("/push_metrics", file)
    metrics_answered = metrics_answered + res.push_metrics.total
    res.push_nodedup = run("/push_nodedup", file)
    res.push_dict = run("/push_dict", file)
    res.static_get = run("/static", nil, true)
    -- requests wrk cut off at the end may have been dispatched without being counted
    local distinct = math.min(res.push.total, N)
    expect_distinct = expect_distinct + distinct
    lost_total = lost_total + math.max(0, distinct - dispatched)
    dup_total = dup_total + dups
    bad_total = bad_total + res.push.bad + res.push_metrics.bad + res.push_nodedup.bad + res.push_dict.bad + res.static.bad + res.lua.bad
    local line = { ("round %d:"):format(r) }
    for _, n in ipairs(NAMES) do
      local x = res[n]
      line[#line + 1] = ("%s %.0f/s (%.0f us nginx CPU/req)"):format(n, x.rps, x.cpu_us)
      if not best[n] or x.rps > best[n].rps then best[n] = x end
    end
    io.stderr:write(table.concat(line, ", "), "\n")
  end
  local b = best
  print(("bench/gateway: %d round(s) of %d s per location, best round each; wrk -t1 -c%d; nginx %d worker(s)")
    :format(rounds, secs, conns, workers))
  print("  location                       req/s   p50      p99     nginx CPU/req (of it kernel)  wrk CPU/req")
  local function row(label, x)
    print(("  %-28s %7.0f  %-8s %-8s %6.1f us (%4.1f us)         %5.1f us"):format(label, x.rps, x.p50 or "-",
      x.p99 or "?", x.cpu_us, x.sys_us, x.wrk_us))
  end
  row("static return 200", b.static)
  row("minimal content_by_lua", b.lua)
  row("push endpoint (shm dedup)", b.push)
  row("push, metrics on (shm dedup)", b.push_metrics)
  row("push, lua_shared_dict dedup", b.push_dict)
  row("push, no dedup store", b.push_nodedup)
  row("static, plain wrk GET", b.static_get)
  local kvs = require("wxhw.kv").shm{ path = SHM, entries = TOTAL, value_bytes = SHM_VALUE_BYTES }
  if kvs then
    local st = kvs:stats()
    print(("shm dedup table: %d entries of capacity %d, %d evictions"):format(st.entries, st.capacity, st.evictions))
    kvs:close()
  end
  print(("ratio push/static: %.2fx (target >= 0.5x); push/minimal-lua %.2fx; no-dedup push/static %.2fx;"
    .. " dict-dedup push/static %.2fx")
    :format(b.push.rps / b.static.rps, b.push.rps / b.lua.rps, b.push_nodedup.rps / b.static.rps,
      b.push_dict.rps / b.static.rps))
  print(("  (against a scriptless wrk GET of /static, the old reference: push %.2fx)"):format(b.push.rps / b.static_get.rps))
  print(("ratio push with metrics/static: %.2fx (target >= 0.5x); metrics cost %.1f us nginx CPU per push")
    :format(b.push_metrics.rps / b.static.rps, b.push_metrics.cpu_us - b.push.cpu_us))
  -- every answered push is counted once (after the workers' last flush)
  os.execute("sleep 1.5")
  local text = sh("curl -s " .. srv.base_url .. "/metrics")
  local counted = 0
  -- (ok and duplicate: a round longer than its pushes replays them)
  for v in text:gmatch('wxhw_callback_pushes_total{[^}]*} (%d+)') do counted = counted + tonumber(v) end
  print(("metrics: %d pushes counted, %d answered by wrk (in-flight ones at a run's end may add a few)")
    :format(counted, metrics_answered))
  assert(counted >= metrics_answered and counted <= metrics_answered + rounds * conns, "metrics miscounted the pushes")
  print(("dispatches: %d distinct pushes answered, lost: %d, duplicated: %d, non-200: %d")
    :format(expect_distinct, lost_total, dup_total, bad_total))
  -- exactly-once is a property, not a figure: fail the bench if it breaks
  assert(lost_total == 0 and dup_total == 0 and bad_total == 0, "lost, duplicated or failed dispatches")
end)
local elog = srv:error_log(); io.stderr:write("nginx error.log: ", #elog, " bytes\n", elog:sub(1, 600), "\n")
srv:stop()
os.execute("rm -rf '" .. tmp .. "' '" .. SHM .. "' '" .. SHM_METRICS .. "'")
if not ok then io.stderr:write(tostring(err), "\n"); os.exit(1) end

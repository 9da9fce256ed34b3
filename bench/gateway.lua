-- bench/gateway driver (see bench/gateway).
local nginx = require "support.nginx"
local msgcrypt = require "wxhw.msgcrypt"
local cjson = require "cjson"

local smoke = arg[1] == "--smoke"
local secs = tonumber(os.getenv("WXHW_BENCH_SECS") or "") or (smoke and 2 or 10)
local conns = 32
-- enough distinct pushes that (almost) every request is a new one: the
-- measured path is verify + decrypt + dispatch + encrypted reply
local N = secs * 25000
local TOKEN, KEY, APPID = "benchtoken", ("K"):rep(43), "wxbench000000001"

local tmp = io.popen("mktemp -d /tmp/wxhw-bench-gw.XXXXXX"):read("*l")
local function sh(cmd) local p = io.popen(cmd .. " 2>&1"); local s = p:read("*a"); p:close(); return s end

-- distinct secure-mode pushes, as WeChat builds them
local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
local f = assert(io.open(tmp .. "/pushes.txt", "w"))
local ts = tostring(os.time())
for i = 1, N do
  local plain = cjson.encode({ ToUserName = "gh_b", FromUserName = "o" .. i, CreateTime = tonumber(ts),
    MsgType = "event", Event = "bench_event", MsgId = "m" .. i, RoomId = "room" .. i })
  local nonce = tostring(100000 + i)
  local body, sig = mc:push_body(plain, "mp_json", ts, nonce, "gh_b")
  f:write("/push?timestamp=", ts, "&nonce=", nonce, "&encrypt_type=aes&msg_signature=", sig, "\t", body, "\n")
end
f:close()

local srv = assert(nginx.start{
  workers = 2,
  http_block = "lua_shared_dict wxhw_callbacks 64m;\n  lua_shared_dict bench 16m;\n" ..
    "  init_worker_by_lua_block {\n" ..
    "    local callback = require 'wxhw.callback'\n" ..
    "    local d = ngx.shared.bench\n" ..
    ("    PUSH = callback.mini_program{ token = %q, encoding_aes_key = %q, appid = %q,\n"):format(TOKEN, KEY, APPID) ..
    "      dedup = require('wxhw.callback.ngx').dedup('wxhw_callbacks'),\n" ..
    "      handlers = { bench_event = function(msg)\n" ..
    "        local n = d:incr('k:' .. msg.MsgId, 1, 0)\n" ..
    "        d:incr('dispatched', 1, 0)\n" ..
    "        if n > 1 then d:incr('duplicates', 1, 0) end\n" ..
    "        return { errcode = 0, errmsg = 'ok' }\n" ..
    "      end } }\n" ..
    ("    PUSH_NODEDUP = callback.mini_program{ token = %q, encoding_aes_key = %q, appid = %q, dedup = false,\n"):format(TOKEN, KEY, APPID) ..
    "      handlers = { bench_event = function() return { errcode = 0, errmsg = 'ok' } end } }\n  }\n",
  server_block = [[
    location = /push { content_by_lua_block { require("wxhw.callback.ngx").serve(PUSH) } }
    location = /push_nodedup { content_by_lua_block { require("wxhw.callback.ngx").serve(PUSH_NODEDUP) } }
    location = /static { return 200 "success"; }
    location = /lua { content_by_lua_block { ngx.req.read_body(); ngx.print("success") } }
    location = /stats { content_by_lua_block {
      local d = ngx.shared.bench
      ngx.say(require("cjson").encode({ dispatched = d:get("dispatched") or 0, duplicates = d:get("duplicates") or 0,
        distinct = #d:get_keys(0) - (d:get("dispatched") and 1 or 0) - (d:get("duplicates") and 1 or 0) }))
    } }
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
      path = path:gsub("^/push", "/push" .. (os.getenv("WRK_SUFFIX") or ""))
      mine[#mine + 1] = wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
    end
    i = i + 1
  end
  reqs, k, n, bad = mine, 0, 0, 0
end
function request() k = k % #reqs + 1; n = n + 1; return reqs[k] end
function response(status) if status ~= 200 then bad = bad + 1 end end
function done(summary, latency)
  local sent, distinct, bad_total = 0, 0, 0
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

local function wrk_static(path)
  local out = sh(("wrk -t1 -c%d -d%ds --latency %s%s"):format(conns, secs, srv.base_url, path or "/static"))
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local p99 = out:match("99%%%s+([%d%.]+%a+)")
  return rps, p99
end

local function wrk_push(loc)
  local out = sh(("WRK_SUFFIX=" .. (loc or "") .. " WRK_OUT=%s/out.txt wrk -t1 -c%d -d%ds -s %s/push.lua %s/push%s -- %s/pushes.txt")
    :format(tmp, conns, secs, tmp, srv.base_url, loc or "", tmp))
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local res = io.open(tmp .. "/out.txt"):read("*l")
  local total, bad, sent, p99, p50 = res:match("(%d+) (%d+) (%d+) ([%d%.]+) ([%d%.]+)")
  return rps, tonumber(total), tonumber(bad), tonumber(sent), tonumber(p99), tonumber(p50), out
end

local ok, err = pcall(function()
  local s_rps, s_p99 = wrk_static()
  local l_rps = wrk_static("/lua")
  local p_rps, total, bad, sent, p99, p50, out = wrk_push()
  assert(p_rps, out)
  local st = cjson.decode(sh("curl -s " .. srv.base_url .. "/stats"))
  local nd_rps = wrk_push("_nodedup")
  -- requests wrk cut off at the end may have been dispatched without being counted
  local expect_distinct = math.min(total, N)
  print(("static return 200:  %.0f req/s (p99 %s)"):format(s_rps, s_p99 or "?"))
  print(("push endpoint:      %.0f req/s (p50 %.2f ms, p99 %.2f ms), %d requests, %d non-200"):format(p_rps, p50, p99, total, bad))
  print(("dispatches: %d for %d answered pushes (%d distinct), %d duplicates; repeats answered from cache: %d")
    :format(st.dispatched, total, expect_distinct, st.duplicates, math.max(0, total - st.dispatched)))
  print(("ratio push/static: %.2fx (target >= 0.5x)"):format(p_rps / s_rps))
  print(("push without de-duplication store: %.0f req/s = %.2fx static"):format(nd_rps, nd_rps / s_rps))
  print(("reference: minimal content_by_lua (read body, print) %.0f req/s = %.2fx static; push/minimal-lua %.2fx")
    :format(l_rps, l_rps / s_rps, p_rps / l_rps))
  local lost = math.max(0, expect_distinct - st.dispatched)
  print(("lost: %d, duplicated: %d"):format(lost, st.duplicates))
  -- exactly-once is a property, not a figure: fail the bench if it breaks
  assert(lost == 0 and st.duplicates == 0 and bad == 0, "lost, duplicated or failed dispatches")
end)
local elog = srv:error_log(); io.stderr:write("nginx error.log: ", #elog, " bytes\n", elog:sub(1, 600), "\n")
srv:stop()
os.execute("rm -rf '" .. tmp .. "'")
if not ok then io.stderr:write(tostring(err), "\n"); os.exit(1) end

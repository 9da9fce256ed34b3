-- /metrics: wxhw.metrics renders the Prometheus text exposition format, read
-- back with an independent parser (Debian python3-prometheus-client); the
-- gateway counts pushes by product, event and outcome, duplicates, refusals
-- and handler latency inside nginx (summed across workers in a shared dict)
-- and in program mode, where API calls, token refreshes, call states and
-- rate-limit waits are counted too.
local socket = require "socket"
local cjson = require "cjson"
local msgcrypt = require "wxhw.msgcrypt"
local metrics = require "wxhw.metrics"
local nginx = require "support.nginx"
local prom = require "support.prometheus"
local request = require "support.pumped_request"
local gateway = dofile("examples/gateway.lua")

local TOKEN, KEY, APPID = "metricstoken", ("M"):rep(43), "wxmetrics0000001"

describe("wxhw.metrics", function()
  it("renders what an independent parser reads back: escaped labels, cumulative buckets, sums", function()
    local reg = metrics.new()
    local odd = 'quote " backslash \\ newline \n end'
    local c = reg:counter("t_events_total", "Events.\nWith a \\ backslash.", { "kind", "name" })
    c:inc(1, "a", odd); c:inc(2, "a", odd); c:inc(nil, "b", "x")
    local g = reg:gauge("t_level", "Level.")
    g:inc(5); g:dec(2)
    local h = reg:histogram("t_seconds", "Latency.", { "kind" }, { 0.1, 1 })
    for _, v in ipairs{ 0.05, 0.1, 0.5, 7 } do h:observe(v, "a") end
    reg:counter("t_unused_total", "Declared, never counted.", { "x" })
    local text = reg:render()
    local m = prom.parse(text)
    assert.equal(3, m.value("t_events_total", { kind = "a", name = odd }))
    assert.equal(1, m.value("t_events_total", { kind = "b", name = "x" }))
    assert.equal("counter", m.types.t_events)
    assert.equal(3, m.value("t_level"))
    assert.equal("histogram", m.types.t_seconds)
    assert.equal(2, m.value("t_seconds_bucket", { kind = "a", le = "0.1" })) -- le is inclusive
    assert.equal(3, m.value("t_seconds_bucket", { kind = "a", le = "1" }))
    assert.equal(4, m.value("t_seconds_bucket", { kind = "a", le = "+Inf" }))
    assert.equal(4, m.value("t_seconds_count", { kind = "a" }))
    assert.near(7.65, m.value("t_seconds_sum", { kind = "a" }), 1e-9)
    assert.matches("# HELP t_events_total Events.\\nWith a \\\\ backslash.\n", text, 1, true)
  end)

  it("keeps at most max_series label sets per metric, the rest under \"other\"", function()
    local reg = metrics.new{ max_series = 2 }
    local c = reg:counter("t_total", "T.", { "event" })
    for i = 1, 5 do c:inc(1, "e" .. i) end
    local m = prom.parse(reg:render())
    assert.equal(1, m.value("t_total", { event = "e1" }))
    assert.equal(1, m.value("t_total", { event = "e2" }))
    assert.equal(3, m.value("t_total", { event = "other" }))
    assert.equal(5, m.value("t_total"))
  end)

  it("refuses bad names and a second, different declaration", function()
    local reg = metrics.new()
    assert.has_error(function() reg:counter("1bad", "x") end)
    assert.has_error(function() reg:counter("ok_total", "x", { "le" }) end)
    local a = reg:counter("ok_total", "x", { "a" })
    assert.equal(a, reg:counter("ok_total", "x", { "a" }))
    assert.has_error(function() reg:gauge("ok_total", "x", { "a" }) end)
  end)
end)

describe("wxhw.metrics in a full lua_shared_dict #nosan", function()
  it("never evicts a counter to make room for a new series", function()
    local srv = assert(nginx.start{ http_block = "lua_shared_dict m 12k;", server_block = [[
      location = /fill { content_by_lua_block {
        local metrics = require "wxhw.metrics"
        local reg = metrics.new{ backend = assert(metrics.ngx_shared("m")), max_series = 100000 }
        local c = reg:counter("t_total", "T.", { "k" })
        c:inc(7, "keep")
        reg:render()                       -- flushed: "keep" is in the dict
        for i = 1, 3000 do c:inc(1, "s" .. i) end
        reg:render()                       -- most of these find no room
        c:inc(1, "keep")
        local out = reg:render()
        ngx.header["Content-Length"] = #out
        ngx.print(out)
      } }]] })
    local st, body = request(srv.port, "GET", "/fill", nil, function() end)
    local log = srv:error_log()
    srv:stop()
    assert.equal(200, st, log)
    local m = prom.parse(body)
    assert.equal(8, m.value("t_total", { k = "keep" }), body)
    assert.is_true(m.value("t_total") < 3008) -- the dict was full: some series are not there (yet)
  end)
end)

-- One Mini Program push as WeChat sends it.
local function push(mc, msg, nonce)
  local ts = tostring(os.time())
  local body, sig = mc:push_body(cjson.encode(msg), "mp_json", ts, nonce, "gh_1")
  return ("/wx/push?timestamp=%s&nonce=%s&encrypt_type=aes&msg_signature=%s&openid=o1"):format(ts, nonce, sig), body
end

local function voip(room)
  return { ToUserName = "gh_1", FromUserName = "o1", CreateTime = os.time(), MsgType = "event",
           Event = "iot_voip_notify", Action = "join_voip_room", Payload = "", RoomId = room, SessionKey = "sk",
           ServerToken = "st", ModelId = "m1", Sn = "SN-" .. room }
end

local function write_config(dir, extra)
  local path = dir .. "/gateway.conf.lua"
  local f = assert(io.open(path, "w"))
  f:write(([[return {
  mp = { token = %q, encoding_aes_key = %q, appid = %q, max_skew = false },
  calls = { socket_path = %q, ring_timeout = 10, worker = { %q, "call-worker", "--simulate", "--answer-after", "0.1" } },
  metrics = %s,
}]]):format(TOKEN, KEY, APPID, dir .. "/calls.sock", nginx.repo .. "/bin/wxhw", extra or "true"))
  f:close()
  return path
end

-- The same traffic for both servers: 1 call (handled) and a retransmission
-- of it, 4 events no handler wants, 3 pushes with a wrong signature, 1 path
-- nobody serves.
local function traffic(port, pump, mc)
  local room = "room-m-" .. math.random(1e9)
  local msg = voip(room)
  local target, body = push(mc, msg, "n1")
  local st, b = request(port, "POST", target, body, pump)
  assert.equal(200, st, b)
  target, body = push(mc, msg, "n2")
  assert.equal(200, (request(port, "POST", target, body, pump)))
  for i = 1, 4 do
    target, body = push(mc, { ToUserName = "gh_1", FromUserName = "o1", CreateTime = os.time(), MsgType = "event",
                              Event = "no_handler_event", MsgId = "m" .. i }, "u" .. i)
    st, b = request(port, "POST", target, body, pump)
    assert.equal(200, st); assert.equal("success", b)
  end
  for i = 1, 3 do
    target, body = push(mc, voip(room .. i), "b" .. i)
    target = target:gsub("msg_signature=%x+", "msg_signature=" .. ("0"):rep(40))
    assert.equal(403, (request(port, "POST", target, body, pump)))
  end
  assert.equal(404, (request(port, "GET", "/no/such/path", nil, pump)))
  return room
end

-- GET /metrics until `ready(parsed)` (counters of other workers arrive within a flush).
local function scrape(port, pump, ready)
  local deadline, m, text = socket.gettime() + 5, nil, nil
  repeat
    local st, body, head = request(port, "GET", "/metrics", nil, pump)
    assert.equal(200, st, body)
    assert.matches("text/plain; version=0.0.4", head, 1, true)
    text = body
    m = prom.parse(body)
    if ready(m) then return m, text end
    socket.sleep(0.1)
  until socket.gettime() > deadline
  return m, text
end

local function check_pushes(m, text)
  local function v(labels) return m.value("wxhw_callback_pushes_total", labels) end
  assert.equal(1, v{ product = "mp", event = "iot_voip_notify", outcome = "ok" }, text)
  assert.equal(1, v{ product = "mp", event = "iot_voip_notify", outcome = "duplicate" }, text)
  assert.equal(4, v{ product = "mp", event = "no_handler_event", outcome = "unhandled" }, text)
  assert.equal(3, v{ product = "mp", outcome = "refused" }, text)
  assert.equal(1, v{ product = "http", outcome = "refused" }, text)
  assert.equal(1, m.value("wxhw_callback_duplicates_total", { product = "mp" }), text)
  assert.equal(3, m.value("wxhw_callback_refusals_total", { product = "mp", reason = "validate_signature" }), text)
  assert.equal(1, m.value("wxhw_callback_refusals_total", { product = "http", reason = "unknown_path" }), text)
  -- the handler ran once (the duplicate and the unhandled ones never reach one)
  assert.equal(1, m.value("wxhw_callback_handler_seconds_count", { product = "mp" }), text)
  assert.equal(1, m.value("wxhw_callback_handler_seconds_bucket", { product = "mp", le = "+Inf" }), text)
  assert.is_true(m.value("wxhw_callback_handler_seconds_sum", { product = "mp" }) > 0)
  -- nothing secret in a label or value
  assert.is_nil(text:find(TOKEN, 1, true))
  assert.is_nil(text:find(KEY, 1, true))
end

local function complete(m)
  return (m.value("wxhw_callback_pushes_total") or 0) >= 10
end

describe("gateway /metrics #slow #nosan", function()
  local dir, mc
  setup(function()
    local p = io.popen("mktemp -d /tmp/wxhw-metrics.XXXXXX"); dir = p:read("*l"); p:close()
    mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("inside nginx: pushes by product, event and outcome, summed across two workers", function()
    local conf_path = write_config(dir, "{ flush = 0.2 }")
    local conf = gateway.load_config(conf_path)
    conf.http = { host = "127.0.0.1", port = 0 } -- the daemon's own /metrics
    local d = gateway.program(conf, true) -- the call daemon
    local serve = 'content_by_lua_block { require("wxhw.callback.ngx").serve(require("gateway").nginx().%s) }'
    local srv = assert(nginx.start{
      workers = 2,
      main_block = "env WXHW_GATEWAY_CONFIG=" .. conf_path .. ";",
      http_block = "lua_shared_dict wxhw_callbacks 4m;\n  lua_shared_dict wxhw_metrics 1m;\n"
        .. "  init_by_lua_block { require('gateway').init() }\n"
        .. "  init_worker_by_lua_block { require('gateway').nginx() }",
      lua_package_path = nginx.repo .. "/examples/?.lua",
      server_block = ("location = /wx/push { %s }\n location = /metrics { %s }\n location / { %s }")
        :format(serve:format("mp"), serve:format("metrics"), serve:format("not_found")),
    })
    local ok, err = pcall(function()
      traffic(srv.port, d.step, mc)
      local m, text = scrape(srv.port, d.step, complete)
      check_pushes(m, text)
      assert.is_nil(m.value("wxhw_calls_total"), text) -- calls run in the daemon
      -- which counts them on its own /metrics
      m, text = scrape(d.http.port, d.step, function(x) return x.value("wxhw_calls_total", { state = "IDLE" }) end)
      assert.equal(1, m.value("wxhw_calls_total", { state = "IDLE" }), text)
      assert.is_nil(m.value("wxhw_callback_pushes_total"), text)
    end)
    local log = srv:error_log()
    srv:stop()
    d.http:close(); d.supervisor:close(); d.relay:close()
    assert(ok, tostring(err) .. "\n" .. log)
  end)

  it("in program mode, with API calls, token refreshes, call states and rate-limit waits", function()
    local emulator = require "support.emulator"
    local emu = emulator.start{}
    local conf = gateway.load_config(write_config(dir))
    conf.calls.socket_path = dir .. "/calls2.sock"
    local d = gateway.program(conf)
    local ok, err = pcall(function()
      local room = traffic(d.http.port, d.step, mc)
      -- the calls object ran in this process: its states are counted
      local deadline = socket.gettime() + 5
      while socket.gettime() < deadline and d.calls:get(room).state ~= "TALKING" do d.step() end
      d.calls:hangup(room, "device")
      -- a client and token managers of the application, hooked to the same registry
      local cr = emu.credentials
      local token = require "wxhw.token"
      local mgr = token.new{ source = "stable_token", appid = cr.mp.appid, secret = cr.mp.secret,
        base_url = emu.base_url, store = "memory", on_token_refresh = d.instruments.on_token_refresh }
      local client = assert(require("wxhw.client").new{ base_urls = { mp = emu.base_url }, token_provider = mgr,
        rate_limits = { ["mp /wxa/getsnticket"] = { rate = 20, burst = 1 } } })
      d.instruments:client(client)
      local mp = require("wxhw.mp").new(client, { model_id = cr.mp.model_id })
      assert(mp:sn_ticket{ sn = "SN_M1" })
      assert(mp:sn_ticket{ sn = "SN_M2" }) -- waits ~50 ms for the bucket
      local bad = token.new{ source = "stable_token", appid = cr.mp.appid, secret = ("0"):rep(32),
        base_url = emu.base_url, store = "memory", on_token_refresh = d.instruments.on_token_refresh }
      assert.is_nil(bad:token())
      local m, text = scrape(d.http.port, d.step, complete)
      check_pushes(m, text)
      assert.equal(2, m.value("wxhw_api_calls_total", { product = "mp", endpoint = "/wxa/getsnticket", errcode = "0" }), text)
      assert.equal(2, m.value("wxhw_api_call_seconds_count", { product = "mp" }), text)
      assert.equal(2, m.value("wxhw_token_refreshes_total", { reason = "missing" }), text)
      assert.equal(1, m.value("wxhw_token_refresh_failures_total", { reason = "missing" }), text)
      assert.is_true(m.value("wxhw_ratelimit_waits_total") >= 1, text)
      assert.is_true(m.value("wxhw_ratelimit_wait_seconds_total") > 0, text)
      assert.equal(1, m.value("wxhw_calls_total", { state = "IDLE" }), text)
      assert.equal(1, m.value("wxhw_calls_total", { state = "TALKING" }), text)
      assert.equal(1, m.value("wxhw_calls_total", { state = "HANGUP_BY_CALLER" }), text)
      assert.equal(0, m.value("wxhw_calls_active", { state = "TALKING" }), text)
    end)
    d.http:close(); d.supervisor:close(); d.relay:close()
    emu.stop()
    assert(ok, tostring(err))
  end)
end)

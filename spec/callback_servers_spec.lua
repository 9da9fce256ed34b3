-- The gateway behind real servers: Debian nginx + lua module (handlers in the
-- nginx workers, calls in the daemon over a unix socket) and the small Lua
-- HTTP server (everything in one process). The daemon runs in this process;
-- requests are made without blocking so its loop keeps turning.
local socket = require "socket"
local cjson = require "cjson"
local msgcrypt = require "wxhw.msgcrypt"
local nginx = require "support.nginx"
local gateway = dofile("examples/gateway.lua")

local TOKEN, KEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"
local V_QS = "signature=6c5c811b55cc85e0e1b54100749188c20beb3f5d&timestamp=1714112445&nonce=415670741"
  .. "&openid=o9AgO5Kd5ggOC-bXrbNODIiE3bGY&encrypt_type=aes&msg_signature=046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
local V_BODY = [[{"ToUserName":"gh_97417a04a28d","Encrypt":"+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="}]]

local function write_config(dir)
  local path = dir .. "/gateway.conf.lua"
  local f = assert(io.open(path, "w"))
  f:write(([[return {
  mp = { token = %q, encoding_aes_key = %q, appid = %q, max_skew = false },
  calls = { socket_path = %q, ring_timeout = 10, worker = { %q, "call-worker", "--simulate", "--answer-after", "0.1" } },
}]]):format(TOKEN, KEY, APPID, dir .. "/calls.sock", nginx.repo .. "/bin/wxhw"))
  f:close()
  return path
end

-- A raw HTTP/1.1 exchange that keeps `pump()` running while it waits.
local request = require "support.pumped_request"

local function push_query(mc, msg, nonce)
  local ts = tostring(os.time())
  local body, sig = mc:push_body(cjson.encode(msg), "mp_json", ts, nonce, "gh_1")
  return ("timestamp=%s&nonce=%s&encrypt_type=aes&msg_signature=%s&openid=o1"):format(ts, nonce, sig), body
end

local function voip(room, sn)
  return { ToUserName = "gh_1", FromUserName = "o1", CreateTime = os.time(), MsgType = "event",
           Event = "iot_voip_notify", Action = "join_voip_room", Payload = "", RoomId = room, SessionKey = "sk",
           ServerToken = "st", ModelId = "m1", Sn = sn }
end

local function reply_plain(mc, body)
  local r = cjson.decode(body)
  local plain = assert(mc:decrypt(r.MsgSignature, ("%d"):format(r.TimeStamp), r.Nonce, r.Encrypt))
  return cjson.decode(plain)
end

-- The VoIP push's answer is plaintext JSON (cloud-server-sdk), not encrypted.
local function voip_answer(body)
  local r = cjson.decode(body)
  assert.is_nil(r.Encrypt)
  return r
end

local function shared_checks(port, d, mc)
  local pump = d.step
  -- URL verification vector
  local st, body = request(port, "GET", "/wx/push?signature=f464b24fc39322e44b38aa78f5edd27bd1441696"
    .. "&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249", nil, pump)
  assert.equal(200, st); assert.equal("4375120948345356249", body)
  -- the published push is a debug_demo event the gateway has no handler
  -- for: acknowledged (a 4xx would only make WeChat send it again)
  st, body = request(port, "POST", "/wx/push?" .. V_QS, V_BODY, pump)
  assert.equal(200, st); assert.equal("success", body)
  -- wrong signature
  st = request(port, "POST", "/wx/push?" .. V_QS:gsub("msg_signature=046e", "msg_signature=146e"), V_BODY, pump)
  assert.equal(403, st)
  -- repeated and valueless query arguments: the first value counts (200 =
  -- verified and decrypted, then no handler; 403 would mean a wrong nonce)
  st = request(port, "POST", "/wx/push?" .. V_QS .. "&nonce=other&flag&timestamp=1", V_BODY, pump)
  assert.equal(200, st)
  -- a call: errcode 0, the worker answers, a retransmission gets the same bytes
  local room = "room-srv-" .. math.random(1e9)
  local call_msg = voip(room, "SN-" .. room) -- one message: a retransmission repeats it byte for byte
  local qs, pbody = push_query(mc, call_msg, "n1")
  local st1, b1 = request(port, "POST", "/wx/push?" .. qs, pbody, pump)
  assert.equal(200, st1)
  assert.same({ errcode = 0, errmsg = "ok" }, voip_answer(b1))
  local qs2, pbody2 = push_query(mc, call_msg, "n2")
  local st2, b2 = request(port, "POST", "/wx/push?" .. qs2, pbody2, pump)
  assert.equal(200, st2); assert.equal(b1, b2)
  local deadline = socket.gettime() + 5
  while socket.gettime() < deadline and d.calls:get(room).state ~= "TALKING" do pump() end
  assert.equal("TALKING", d.calls:get(room).state)
  assert.equal(1, d.supervisor.counters.started)
  -- a second call for the same device is refused (busy)
  local qs3, pbody3 = push_query(mc, voip(room .. "-b", "SN-" .. room), "n3")
  local _, b3 = request(port, "POST", "/wx/push?" .. qs3, pbody3, pump)
  assert.equal(1, voip_answer(b3).errcode)
  d.calls:hangup(room, "device")
end

describe("gateway behind servers #slow #nosan", function()
  local dir, mc
  setup(function()
    local p = io.popen("mktemp -d /tmp/wxhw-gw.XXXXXX"); dir = p:read("*l"); p:close()
    mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("nginx workers verify, decrypt, de-duplicate and hand calls to the daemon", function()
    local conf_path = write_config(dir)
    local d = gateway.program(gateway.load_config(conf_path), true)
    local srv = assert(nginx.start{
      main_block = "env WXHW_GATEWAY_CONFIG=" .. conf_path .. ";",
      http_block = "lua_shared_dict wxhw_callbacks 4m;\n  init_worker_by_lua_block { require('gateway').nginx() }",
      lua_package_path = nginx.repo .. "/examples/?.lua",
      workers = 2,
      server_block = [[
        location = /wx/push { content_by_lua_block { require("wxhw.callback.ngx").serve(require("gateway").nginx().mp) } }
      ]],
    })
    local ok, err = pcall(function()
      shared_checks(srv.port, d, mc)
      -- daemon down: the push fails with 500 (WeChat retransmits), nothing is remembered
      d.supervisor:close()
      local qs, body = push_query(mc, voip("room-down", "SN-down"), "n9")
      assert.equal(500, (request(srv.port, "POST", "/wx/push?" .. qs, body, function() end)))
      assert.equal(500, (request(srv.port, "POST", "/wx/push?" .. qs, body, function() end)))
    end)
    local log = srv:error_log()
    srv:stop()
    d.relay:close()
    assert(ok, tostring(err) .. "\n" .. log)
  end)

  it("the Lua HTTP server runs the same gateway in one process", function()
    local conf = gateway.load_config(write_config(dir))
    conf.calls.socket_path = dir .. "/calls2.sock"
    local d = gateway.program(conf)
    local ok, err = pcall(shared_checks, d.http.port, d, mc)
    -- keep-alive, limits and bad requests
    local c = assert(socket.connect("127.0.0.1", d.http.port))
    c:settimeout(0)
    c:send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    local buf, deadline = "", socket.gettime() + 3
    while socket.gettime() < deadline and select(2, buf:gsub("\r\n\r\nok", "")) < 2 do
      d.step()
      local data, _, partial = c:receive(65536)
      buf = buf .. (data or partial or "")
    end
    c:close()
    local n_ok = select(2, buf:gsub("HTTP/1.1 200 OK", ""))
    local st413 = request(d.http.port, "POST", "/wx/push", string.rep("x", 2 * 1048576), d.step)
    local st404 = request(d.http.port, "GET", "/nope", nil, d.step)
    local st400 = request(d.http.port, "POST", "/wx/push?timestamp=1", "", d.step)
    d.http:close(); d.supervisor:close(); d.relay:close()
    assert(ok, tostring(err))
    assert.equal(2, n_ok)
    assert.equal(413, st413)
    assert.equal(404, st404)
    assert.equal(400, st400)
  end)
end)

describe("examples/nginx.conf #nosan", function()
  it("is a valid configuration for Debian nginx once pointed at this checkout", function()
    local p = io.popen("mktemp -d /tmp/wxhw-conf.XXXXXX"); local d = p:read("*l"); p:close()
    local conf = assert(io.open("examples/nginx.conf")):read("*a")
    conf = conf:gsub("/opt/wxhw", nginx.repo):gsub("listen 8080;", "listen 127.0.0.1:" .. nginx.free_port() .. ";")
    conf = "pid " .. d .. "/nginx.pid;\n" .. conf
    local f = assert(io.open(d .. "/nginx.conf", "w")); f:write(conf); f:close()
    os.execute("mkdir -p " .. d .. "/logs")
    local cfg = assert(io.open(d .. "/gw.lua", "w"))
    cfg:write(('return { mp = { token = "t", encoding_aes_key = "%s", appid = "wx1" }, calls = { socket_path = "%s/c.sock" } }')
      :format(("A"):rep(43), d))
    cfg:close()
    local out = io.popen(("WXHW_GATEWAY_CONFIG=%s/gw.lua nginx -t -p %s -c %s/nginx.conf -e %s/error.log 2>&1")
      :format(d, d, d, d)):read("*a")
    os.execute("rm -rf " .. d)
    assert.matches("syntax is ok", out)
    assert.matches("test is successful", out)
  end)
end)

-- An nginx location answering the counter `key` of lua_shared_dict n.
local function counter_location(path, key)
  return ([[location = %s { content_by_lua_block {
    local s = tostring(ngx.shared.n:get(%q) or 0)
    ngx.header["Content-Length"] = #s
    ngx.print(s)
  } }]]):format(path, key)
end

-- The same race on both de-duplication stores nginx can share between workers.
local DEDUP_STORES = require "support.dedup_stores"

for _, store in ipairs(DEDUP_STORES) do
describe("nginx: a duplicate arriving while the first copy runs, " .. store.name .. " #slow #nosan", function()
  it("waits for the first answer and dispatches once, across workers", function()
    local path = require("support.files").fresh_path()
    local srv = assert(nginx.start{
      workers = 2,
      http_block = ([[lua_shared_dict wxhw_callbacks 4m; lua_shared_dict n 1m;
        init_worker_by_lua_block {
          SLOW = require("wxhw.callback").mini_program{ token = %q, encoding_aes_key = %q, appid = %q,
            dedup = %s,
            handlers = { slow_event = function(msg)
              ngx.shared.n:incr("calls", 1, 0)
              ngx.sleep(0.4)
              return { errcode = 0, pid = ngx.worker.pid() }
            end } }
        }]]):format(TOKEN, KEY, APPID, store.conf(path)),
      server_block = [[
        location = /push { content_by_lua_block { require("wxhw.callback.ngx").serve(SLOW) } }
      ]] .. counter_location("/n", "calls"),
    })
    local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
    local msg = { MsgType = "event", Event = "slow_event", FromUserName = "o", CreateTime = os.time() }
    local conns = {}
    for i = 1, 4 do -- WeChat's copies: re-encrypted, new nonces
      local qs, body = push_query(mc, msg, "dup" .. i)
      local c = assert(socket.connect("127.0.0.1", srv.port))
      c:send(("POST /push?%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"):format(qs, #body, body))
      c:settimeout(0)
      conns[i] = { c = c, buf = "" }
    end
    local deadline, open = socket.gettime() + 5, 4
    while open > 0 and socket.gettime() < deadline do
      socket.select((function() local t = {} for _, x in ipairs(conns) do if not x.done then t[#t + 1] = x.c end end return t end)(), nil, 0.05)
      for _, x in ipairs(conns) do
        if not x.done then
          local data, err, partial = x.c:receive(65536)
          x.buf = x.buf .. (data or partial or "")
          if err == "closed" then x.done = true; open = open - 1; x.c:close() end
        end
      end
    end
    local n = select(2, request(srv.port, "GET", "/n", nil, function() end))
    local log = srv:error_log()
    srv:stop()
    assert.equal(0, open, log)
    local first = conns[1].buf:match("\r\n\r\n(.*)$")
    for _, x in ipairs(conns) do
      assert.matches("^HTTP/1.1 200", x.buf)
      assert.equal(first, x.buf:match("\r\n\r\n(.*)$"))
    end
    assert.equal("1", n)
    assert.equal(0, reply_plain(mc, first).errcode)
    if store.check then store.check(path) end
    os.remove(path)
  end)
end)
end

describe("nginx: request headers are read only when a handler asks #nosan", function()
  it("ctx.headers is the request's header table (pairs works) when read, and not built otherwise", function()
    local srv = assert(nginx.start{
      http_block = ([[lua_shared_dict n 1m;
        init_worker_by_lua_block {
          local real = ngx.req.get_headers
          ngx.req.get_headers = function(...) ngx.shared.n:incr("reads", 1, 0); return real(...) end
          MP = require("wxhw.callback").mini_program{ token = %q, encoding_aes_key = %q, appid = %q, dedup = false,
            handlers = {
              peek = function(_, ctx)
                local names = {}
                for k in pairs(ctx.headers) do names[#names + 1] = k end
                table.sort(names)
                return { errcode = 0, tag = ctx.headers["x-tag"], names = table.concat(names, ",") }
              end,
              quiet = function() return { errcode = 0 } end,
            } }
        }]]):format(TOKEN, KEY, APPID),
      server_block = [[
        location = /push { content_by_lua_block { require("wxhw.callback.ngx").serve(MP) } }
        location = /own { content_by_lua_block {
          require("wxhw.callback.ngx").serve(function(method, query, headers)
            return 200, { ["Content-Type"] = "text/plain" }, tostring(headers["x-tag"])
          end)
        } }
        location = /raises { content_by_lua_block {
          require("wxhw.callback.ngx").serve(function() error("boom in own handler") end)
        } }
      ]] .. counter_location("/reads", "reads"),
    })
    local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
    local pump = function() end
    local qs, body = push_query(mc, { MsgType = "event", Event = "quiet", FromUserName = "o", CreateTime = os.time() }, "q1")
    local s1 = request(srv.port, "POST", "/push?" .. qs, body, pump, "X-Tag: t1\r\n")
    local _, reads_after_quiet = request(srv.port, "GET", "/reads", nil, pump)
    qs, body = push_query(mc, { MsgType = "event", Event = "peek", FromUserName = "o", CreateTime = os.time() }, "q2")
    local s2, reply = request(srv.port, "POST", "/push?" .. qs, body, pump, "X-Tag: t2\r\n")
    local _, reads_after_peek = request(srv.port, "GET", "/reads", nil, pump)
    local s3, own = request(srv.port, "GET", "/own", nil, pump, "X-Tag: t3\r\n")
    -- serve has no pcall of its own (a trace could not return through it):
    -- what a handler raises is OpenResty's 500, logged with its traceback
    local s4 = request(srv.port, "POST", "/raises", "x", pump)
    local log = srv:error_log()
    srv:stop()
    assert.equal(200, s1, log)
    assert.equal(200, s2, log)
    assert.equal("0", reads_after_quiet)
    assert.equal("1", reads_after_peek) -- read once, though the handler used it twice
    local r = reply_plain(mc, reply)
    assert.equal("t2", r.tag)
    -- a handler not made by wxhw.callback gets the header table itself
    assert.equal(200, s3, log)
    assert.equal("t3", own)
    assert.equal(500, s4)
    assert.matches("boom in own handler", log, 1, true)
    assert.matches("content%-length", r.names)
    assert.matches("x%-tag", r.names)
  end)
end)

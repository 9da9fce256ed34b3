-- Operating the gateway (issue 15): refused pushes are logged once per
-- reason (rate-limited, no secret), a bad configuration stops nginx at
-- start, /healthz says when the gateway cannot serve, and the defaults work
-- for nginx's worker user (calls socket 0660, a token store file per uid).
local socket = require "socket"
local cjson = require "cjson"
local msgcrypt = require "wxhw.msgcrypt"
local refusals = require "wxhw.callback.refusals"
local nginx = require "support.nginx"
local request = require "support.pumped_request"
local files = require "support.files"
local gateway = dofile("examples/gateway.lua")

local TOKEN, KEY, APPID = "opstoken", ("O"):rep(43), "wxops00000000001"
local function idle() end

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/wxhw-ops.XXXXXX"); local d = p:read("*l"); p:close()
  return d
end

local function write(path, s)
  local f = assert(io.open(path, "w")); f:write(s); f:close()
  return path
end

local function good_config(dir)
  return write(dir .. "/gw.lua", ([[return {
  mp = { token = %q, encoding_aes_key = %q, appid = %q },
  calls = { socket_path = %q, worker = { "true" } },
  metrics = true,
}]]):format(TOKEN, KEY, APPID, dir .. "/calls.sock"))
end

local SERVE = 'content_by_lua_block { require("wxhw.callback.ngx").serve(require("gateway").nginx().%s) }'

local function start(conf_path, workers)
  return nginx.start{
    workers = workers or 1,
    main_block = "env WXHW_GATEWAY_CONFIG=" .. conf_path .. ";",
    http_block = "lua_shared_dict wxhw_callbacks 4m;\n  lua_shared_dict wxhw_metrics 1m;\n"
      .. "  init_by_lua_block { require('gateway').init() }\n"
      .. "  init_worker_by_lua_block { require('gateway').nginx() }",
    lua_package_path = nginx.repo .. "/examples/?.lua",
    server_block = ("location = /wx/push { %s }\n location = /healthz { %s }\n location / { %s }")
      :format(SERVE:format("mp"), SERVE:format("healthz"), SERVE:format("not_found")),
  }
end

-- Runs fn(srv), stops nginx, then fails with its error log if fn did.
local function with_server(srv, fn)
  local ok, err = pcall(fn, srv)
  local log = srv:error_log()
  srv:stop()
  assert(ok, tostring(err) .. "\n" .. log)
end

describe("wxhw.callback.refusals", function()
  it("writes one line per product and reason per interval, then how many it held back", function()
    local now, lines = 1000, {}
    local log = refusals.new{ interval = 60, clock = function() return now end,
                              write = function(l) lines[#lines + 1] = l end }
    for _ = 1, 5 do log:note("mp", "stale_timestamp", 403) end
    log:note("mp", "validate_signature", 403)
    log:note("wecom", "stale_timestamp", 403)
    assert.same({ "wxhw callback: refused mp push (403 stale_timestamp)",
                  "wxhw callback: refused mp push (403 validate_signature)",
                  "wxhw callback: refused wecom push (403 stale_timestamp)" }, lines)
    now = now + 59
    log:note("mp", "stale_timestamp", 403)
    assert.equal(3, #lines)
    now = now + 1
    log:note("mp", "stale_timestamp", 403)
    assert.equal("wxhw callback: refused mp push (403 stale_timestamp); 5 more since the last line", lines[4])
  end)

  it("is what a callback endpoint reports its refusals to", function()
    local lines = {}
    local push = require("wxhw.callback").mini_program{ token = TOKEN, encoding_aes_key = KEY, appid = APPID,
      log_refusals = refusals.new{ write = function(l) lines[#lines + 1] = l end } }
    local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
    local body, sig = mc:push_body('{"MsgType":"event","Event":"x"}', "mp_json", "1", "nonce1", "gh")
    local q = { timestamp = "1", nonce = "nonce1", msg_signature = sig, encrypt_type = "aes" }
    assert.equal(403, (push("POST", q, {}, body)))
    assert.equal(403, (push("POST", q, {}, body)))
    assert.same({ "wxhw callback: refused mp push (403 stale_timestamp)" }, lines)
    local pay = require("wxhw.callback").pay{ pay = { notification = function() end }, handler = function() end,
      log_refusals = refusals.new{ write = function(l) lines[#lines + 1] = l end } }
    assert.equal(405, (pay("GET", {}, {}, "")))
    assert.equal(400, (pay("POST", {}, {}, "")))
    assert.same({ "wxhw callback: refused pay push (405 method_not_allowed)",
                  "wxhw callback: refused pay push (400 empty_body)" }, { lines[2], lines[3] })
  end)

  it("logs a failed handler once per interval with its error, and no later push repeats it", function()
    local lines = {}
    local mp = require("wxhw.callback").mini_program{ token = TOKEN, encoding_aes_key = KEY, appid = APPID,
      max_skew = false, log_refusals = refusals.new{ write = function(l) lines[#lines + 1] = l end },
      handlers = { x = function(msg) if msg.Fail then error("database down at " .. msg.Fail) end end } }
    local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
    local function send(i, fail)
      local body, sig = mc:push_body(('{"MsgType":"event","Event":"x","MsgId":%d%s}'):format(i,
        fail and ',"Fail":"' .. ("z"):rep(400) .. '"' or ""), "mp_json", "1", "n" .. i, "gh")
      return (mp("POST", { timestamp = "1", nonce = "n" .. i, msg_signature = sig, encrypt_type = "aes" }, {}, body))
    end
    assert.equal(500, send(1, true))
    assert.equal(200, send(2))
    assert.equal(500, send(3, true))
    assert.equal(1, #lines)
    assert.matches("^wxhw callback: mp handler failed: .*database down at zzz", lines[1])
    assert.is_true(#lines[1] < 400) -- the error is cut
    -- a handler's own nil, err is a failure with its reason too
    local soft = require("wxhw.callback").mini_program{ token = TOKEN, encoding_aes_key = KEY, appid = APPID,
      max_skew = false, log_refusals = refusals.new{ write = function(l) lines[#lines + 1] = l end },
      handlers = { x = function() return nil, "queue full" end } }
    local body, sig = mc:push_body('{"MsgType":"event","Event":"x","MsgId":9}', "mp_json", "1", "n9", "gh")
    assert.equal(500, (soft("POST", { timestamp = "1", nonce = "n9", msg_signature = sig, encrypt_type = "aes" }, {}, body)))
    assert.equal("wxhw callback: mp handler failed: queue full", lines[2])
  end)
end)

describe("gateway operations in nginx #slow #nosan", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("logs each refusal reason once, with no signature, nonce or body", function()
    local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
    with_server(assert(start(good_config(dir))), function(srv)
      local ts = tostring(os.time())
      local body, sig = mc:push_body(cjson.encode{ MsgType = "event", Event = "x" }, "mp_json", ts, "nonce4711", "gh")
      local bad_sig = ("e"):rep(40)
      for _ = 1, 4 do -- wrong signature
        assert.equal(403, (request(srv.port, "POST", ("/wx/push?timestamp=%s&nonce=nonce4711&encrypt_type=aes&msg_signature=%s")
          :format(ts, bad_sig), body, idle)))
      end
      for _ = 1, 3 do -- a day old
        assert.equal(403, (request(srv.port, "POST", ("/wx/push?timestamp=%d&nonce=nonce4711&encrypt_type=aes&msg_signature=%s")
          :format(os.time() - 86400, sig), body, idle)))
      end
      assert.equal(413, (request(srv.port, "POST", "/wx/push?timestamp=" .. ts, ("x"):rep(70000), idle)))
      assert.equal(404, (request(srv.port, "GET", "/nope?msg_signature=" .. sig, nil, idle)))
      local log
      local deadline = socket.gettime() + 3
      repeat
        socket.sleep(0.05)
        log = srv:error_log()
      until socket.gettime() > deadline or select(2, log:gsub("wxhw callback: refused", "")) >= 4
      local function count(s) return select(2, log:gsub(s:gsub("%p", "%%%0"), "")) end
      assert.equal(1, count("refused mp push (403 validate_signature)"), log)
      assert.equal(1, count("refused mp push (403 stale_timestamp)"), log)
      assert.equal(1, count("refused mp push (413 body_too_large)"), log)
      assert.equal(1, count("refused http push (404 unknown_path)"), log)
      assert.matches("%[warn%]", log)
      -- nothing of the request: no signature, nonce, query or body
      for _, secret in ipairs{ bad_sig, sig, "nonce4711", "/wx/push?", "/nope", TOKEN, body:sub(20, 40) } do
        assert.is_nil(log:find(secret, 1, true), secret)
      end
    end)
  end)

  it("refuses to start on a bad configuration, naming every problem and no secret", function()
    local conf = write(dir .. "/bad.lua", [[return {
  mp = { token = "s3cr3t-token", encoding_aes_key = "tooShortKey", appid = "" },
  dedup = { shm = 1 }, metrics = true,
}]])
    local srv, err = start(conf)
    if srv then srv:stop() end
    assert.is_nil(srv)
    assert.matches("init_by_lua", err)
    assert.matches("gateway: bad configuration", err, 1, true)
    assert.matches("mp.appid must be a non-empty string", err, 1, true)
    assert.matches("mp.encoding_aes_key: encoding_aes_key must be 43 characters", err, 1, true)
    assert.matches("calls must be a table", err, 1, true)
    assert.matches("dedup must be", err, 1, true)
    assert.is_nil(err:find("s3cr3t", 1, true))
    assert.is_nil(err:find("tooShortKey", 1, true))
  end)

  -- nginx -t does not run init_by_lua (lua-nginx-module skips it when
  -- testing): starting does, and `examples/gateway.lua conf --check` checks
  -- a configuration before any nginx runs
  it("examples/nginx.conf: nginx does not start on a bad configuration; --check says why", function()
    local port = nginx.free_port()
    local conf = assert(io.open("examples/nginx.conf")):read("*a")
    conf = conf:gsub("/opt/wxhw", nginx.repo):gsub("listen 8080;", "listen 127.0.0.1:" .. port .. ";")
    write(dir .. "/nginx.conf", "pid " .. dir .. "/nginx.pid;\n" .. conf)
    os.execute("mkdir -p " .. dir .. "/logs")
    local function run(cmd)
      local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
      local out = p:read("*a"); p:close()
      return out
    end
    local bad_conf = write(dir .. "/bad.lua", 'return { mp = { token = "t", encoding_aes_key = "short", appid = "wx1" } }')
    local started = run(("WXHW_GATEWAY_CONFIG=%s nginx -p %s -c %s/nginx.conf -e %s/error.log"):format(bad_conf, dir, dir, dir))
    local pid = io.open(dir .. "/nginx.pid")
    if pid then os.execute("kill " .. pid:read("*l")); pid:close() end
    assert.matches("exit=1", started)
    local elog = assert(io.open(dir .. "/error.log")):read("*a")
    assert.matches("init_by_lua error", elog, 1, true)
    assert.matches("mp.encoding_aes_key: encoding_aes_key must be 43 characters", elog, 1, true)
    assert.matches("calls must be a table", elog, 1, true)
    local checked = run("lua5.4 examples/gateway.lua " .. bad_conf .. " --check")
    assert.matches("exit=1", checked)
    assert.matches("calls must be a table", checked, 1, true)
    checked = run("lua5.4 examples/gateway.lua " .. good_config(dir) .. " --check")
    assert.matches("exit=0", checked)
    assert.matches("configuration ok", checked, 1, true)
    -- the good one starts, as written: /metrics, /healthz (no daemon here), 404 elsewhere
    os.execute("chmod 755 '" .. dir .. "'; chmod 644 '" .. dir .. "/gw.lua'") -- workers run as nobody
    os.remove(dir .. "/error.log")
    started = run(("WXHW_GATEWAY_CONFIG=%s/gw.lua nginx -p %s -c %s/nginx.conf -e %s/error.log"):format(dir, dir, dir, dir))
    assert.matches("exit=0", started)
    local ok, err = pcall(function()
      local deadline, st, body = socket.gettime() + 5
      repeat -- the port may take a moment to answer
        local reached
        reached, st, body = pcall(request, port, "GET", "/metrics", nil, idle)
        if not reached then st = nil; socket.sleep(0.05) end
      until st or socket.gettime() > deadline
      assert.equal(200, st, body)
      require("support.prometheus").parse(body) -- raises on text the parser refuses
      assert.matches("# TYPE wxhw_callback_pushes_total counter", body, 1, true)
      st, body = request(port, "GET", "/healthz", nil, idle)
      assert.equal(503, st)
      assert.matches("call daemon unreachable", body, 1, true)
      assert.equal(404, (request(port, "GET", "/elsewhere", nil, idle)))
    end)
    local f = io.open(dir .. "/nginx.pid")
    if f then os.execute("kill -QUIT " .. f:read("*l") .. "; sleep 0.3"); f:close() end
    assert(ok, tostring(err) .. "\n" .. (io.open(dir .. "/error.log") or io.open("/dev/null")):read("*a"))
  end)

  it("a worker that cannot build its handlers answers 503 and says so once, not per request", function()
    -- valid for init_by_lua, but the shm table cannot be made in the worker
    local conf = write(dir .. "/gw.lua", ([[return {
  mp = { token = %q, encoding_aes_key = %q, appid = %q },
  calls = { socket_path = %q }, dedup = { shm = %q, entries = 100 },
}]]):format(TOKEN, KEY, APPID, dir .. "/calls.sock", dir .. "/no/such/dir/dedup.kv"))
    with_server(assert(start(conf)), function(srv)
      for _ = 1, 5 do
        local st, body = request(srv.port, "GET", "/healthz", nil, idle)
        assert.equal(503, st)
        assert.equal("not ready: gateway configuration failed (see the error log)", body)
        assert.equal(503, (request(srv.port, "POST", "/wx/push", "{}", idle)))
      end
      local log = srv:error_log()
      -- init_worker and at most one retry in these few seconds
      local n = select(2, log:gsub("wxhw gateway: ", ""))
      assert.is_true(n >= 1 and n <= 2, log)
      assert.is_nil(log:find(TOKEN, 1, true))
    end)
  end)

  it("/healthz is 503 while the call daemon's socket is missing, 200 once it listens", function()
    with_server(assert(start(good_config(dir))), function(srv)
      local st, body = request(srv.port, "GET", "/healthz", nil, idle)
      assert.equal(503, st)
      assert.matches("not ready: call daemon unreachable", body, 1, true)
      local listener = assert(require("socket.unix").stream())
      assert(listener:bind(dir .. "/calls.sock"))
      assert(listener:listen(8))
      st, body = request(srv.port, "GET", "/healthz", nil, idle)
      listener:close()
      assert.equal(200, st)
      assert.equal("ok", body)
    end)
  end)
end)

describe("gateway operations in program mode #slow #nosan", function()
  it("logs refusals through the gateway's log, also those the HTTP server answers itself", function()
    local dir, lines = tmpdir(), {}
    local d = gateway.program({ mp = { token = TOKEN, encoding_aes_key = KEY, appid = APPID },
      calls = { socket_path = dir .. "/calls.sock", worker = { "true" } }, http = { host = "127.0.0.1", port = 0 },
      metrics = true, log = function(line) lines[#lines + 1] = line end })
    local ok, err = pcall(function()
      local port, pump = d.http.port, d.step
      for _ = 1, 2 do
        assert.equal(413, (request(port, "POST", "/wx/push?msg_signature=abc", ("x"):rep(70000), pump)))
        assert.equal(404, (request(port, "GET", "/nope?nonce=n1", nil, pump)))
        assert.equal(403, (request(port, "POST", "/wx/push?timestamp=1&nonce=n1&encrypt_type=aes&msg_signature=abc",
          '{"Encrypt":"x"}', pump)))
      end
      assert.same({ "wxhw callback: refused http push (413 body_too_large)",
                    "wxhw callback: refused http push (404 unknown_path)",
                    "wxhw callback: refused mp push (403 stale_timestamp)" }, lines)
      local _, text = request(port, "GET", "/metrics", nil, pump)
      assert.matches('wxhw_callback_refusals_total{product="http",reason="body_too_large"} 2', text, 1, true)
      assert.matches('wxhw_callback_refusals_total{product="mp",reason="stale_timestamp"} 2', text, 1, true)
    end)
    d.http:close(); d.supervisor:close(); d.relay:close()
    os.execute("rm -rf '" .. dir .. "'")
    assert(ok, tostring(err))
  end)
end)

describe("gateway defaults for nginx's worker user", function()
  it("lets workers of another user reach the call daemon through its group (0660), not with 0600 #nosan", function()
    if io.popen("id -u"):read("*l") ~= "0" then return pending("needs root to run workers as nobody") end
    local dir = tmpdir()
    os.execute("chmod 755 '" .. dir .. "'")
    local sock = dir .. "/calls.sock"
    local d = gateway.program({ mp = { token = TOKEN, encoding_aes_key = KEY, appid = APPID },
      calls = { socket_path = sock, worker = { "true" } } }, true)
    local conf = write(dir .. "/gw.lua", ([[return { mp = { token = %q, encoding_aes_key = %q, appid = %q },
  calls = { socket_path = %q } }]]):format(TOKEN, KEY, APPID, sock))
    os.execute("chmod 644 '" .. conf .. "'")
    local srv, err = nginx.start{
      user = "nobody root", -- another user, in the daemon's group
      main_block = "env WXHW_GATEWAY_CONFIG=" .. conf .. ";",
      http_block = "lua_shared_dict wxhw_callbacks 4m;\n  init_by_lua_block { require('gateway').init() }",
      lua_package_path = nginx.repo .. "/examples/?.lua",
      server_block = "location = /healthz { " .. SERVE:format("healthz") .. " }\n"
        .. [[location = /tokens { content_by_lua_block {
             local shm = require("wxhw.store.shm")
             local store, err = shm.new()
             local out = shm.default_path() .. " " .. (store and "open" or tostring(err))
             ngx.header["Content-Length"] = #out
             ngx.print(out)
           } }]],
    }
    local ok, perr = pcall(function()
      assert(srv, err)
      local st, body = request(srv.port, "GET", "/healthz", nil, d.step)
      assert.equal(200, st, body)
      os.execute("chmod 600 '" .. sock .. "'") -- the old default
      st, body = request(srv.port, "GET", "/healthz", nil, d.step)
      assert.equal(503, st)
      assert.equal("not ready: call daemon unreachable (permission denied)", body)
      -- the default token store of a worker is its own user's (mode 0600)
      local uid = io.popen("id -u nobody"):read("*l")
      local existed = io.open("/tmp/wxhw-tokens-" .. uid)
      if existed then existed:close() end
      st, body = request(srv.port, "GET", "/tokens", nil, d.step)
      if not existed then os.remove("/tmp/wxhw-tokens-" .. uid) end
      assert.equal(200, st)
      assert.equal("/tmp/wxhw-tokens-" .. uid .. " open", body)
    end)
    local log = srv and srv:error_log() or ""
    if srv then srv:stop() end
    d.supervisor:close(); d.relay:close()
    os.execute("rm -rf '" .. dir .. "'")
    assert(ok, tostring(perr) .. "\n" .. log)
  end)

  it("gives the calls socket mode 0660 (the daemon's group may connect, others not)", function()
    local dir = tmpdir()
    local d = gateway.program({ mp = { token = TOKEN, encoding_aes_key = KEY, appid = APPID },
      calls = { socket_path = dir .. "/calls.sock", worker = { "true" } } }, true)
    local mode = files.mode(dir .. "/calls.sock")
    d.supervisor:close(); d.relay:close()
    os.execute("rm -rf '" .. dir .. "'")
    assert.equal("660", mode)
  end)

  it("names the default token store file by uid, not $USER (nginx workers have no environment)", function()
    local p = io.popen("env -u WXHW_TOKEN_STORE -u XDG_RUNTIME_DIR USER=someone-else lua5.4 -e '"
      .. "package.path = \"./lua/?.lua;./lua/?/init.lua;\" .. package.path; package.cpath = \"./build/5.4/?.so;\" .. package.cpath;"
      .. " io.write(require(\"wxhw.store.shm\").default_path())'")
    local path = p:read("*a"); p:close()
    local uid = io.popen("id -u"):read("*l")
    assert.equal("/tmp/wxhw-tokens-" .. uid, path)
  end)
end)

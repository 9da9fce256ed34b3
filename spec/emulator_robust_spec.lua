-- The emulator never crashes on bad input: every product endpoint answers
-- hostile bodies with a documented error, and --state survives a restart.
local emulator = require "support.emulator"
local cjson = require "cjson"

-- every product endpoint, from the emulator's contract (a path parameter: "X")
local ENDPOINTS = {}
for _, entry in ipairs(require("wxhw.emulator.contract").entries) do
  ENDPOINTS[#ENDPOINTS + 1] = entry.prefix and (entry.prefix .. "X") or entry.path
end
local BODIES = { "", "null", "[]", "{}", "1", '"s"', "{bad", '{"sn":1,"model_id":[],"group_id":{},"device_list":"x"}',
  '{"device_list":[1,2,"x",null],"device_id_list":[{}],"product_id":"abc","checkin_data":[1],"user_item":[null]}',
  '{"product_id":1e400,"limit":-5,"cursor":{},"msg":123,"push_token":[]}', string.rep("[", 5000),
  '{"grant_type":"client_credential","appid":1,"secret":true,"force_refresh":"x"}', "\0\1\2\255" }

describe("emulator robustness", function()
  local e
  setup(function() e = emulator.start{ seed = 2 } end)
  teardown(function() if e then e.stop() end end)

  it("answers hostile input on every endpoint without a 500", function()
    local mp = e.credentials.mp
    local tok = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret).access_token
    for _, path in ipairs(ENDPOINTS) do
      for _, q in ipairs{ "", "?access_token=" .. tok, "?access_token=%zz&model_access_token=&device_access_token=x&offset=1&limit=x" } do
        for _, body in ipairs(BODIES) do
          for _, method in ipairs{ "POST", "GET" } do
            local status, raw = e.request(method, path .. q, method == "POST" and body or nil)
            assert.is_number(status, path)
            assert.is_true(status < 500, path .. " " .. method .. " " .. body:sub(1, 40) .. " -> " .. tostring(status) .. " " .. tostring(raw))
            local t = cjson.decode(raw)
            assert.is_true(t.errcode ~= nil or t.code ~= nil or t.access_token ~= nil or t.data ~= nil, path .. " " .. raw)
          end
        end
      end
    end
    assert.is_true(e.control("/__emulator/health").ok)
  end)

  it("answers hostile input on the control API without a 500", function()
    local CBODIES = { "", "null", "[]", "{}", "1", "{bad", '{"advance":-1}', '{"set":"x"}', '{"path":1}',
      '{"faults":[{"path":"/x","count":"1"}]}', '{"faults":"x"}', '{"openid":1,"sn":{},"model_id":[]}',
      '{"product_id":"x","device_id":1}', '{"product_id":1e300}', '{"device_sn":null}', '{"message":"x"}',
      '{"mode":"weird"}', '{"method":1,"url":2}', '{"mp_url":"ftp://x"}', '{"template_ids":[1,2,3,4]}',
      '{"count":"many"}', '{"index":"x"}', '{"access_token":5}', '{"resource":5,"signtest":"yes"}' }
    local routes = e.control("/__emulator/").control
    for _, r in ipairs(routes) do
      local method, path = r:match("^(%S+) (%S+)$")
      if path ~= "/__emulator/shutdown" and path ~= "/__emulator/pay/rotate_certificate" then
        for _, body in ipairs(CBODIES) do
          local status, raw = e.request(method, path .. "?ticket=&product_id=x&index=0", method ~= "GET" and body or nil)
          assert.is_true(status < 500, r .. " " .. body .. " -> " .. tostring(status) .. " " .. tostring(raw))
        end
      end
    end
    assert.is_true(e.control("/__emulator/health").ok)
  end)
end)

describe("emulator --state", function()
  it("keeps products, groups, tokens and the clock across a restart", function()
    local state = os.tmpname()
    os.remove(state)
    local e = emulator.start{ seed = 5, state = state }
    local app, mp = e.credentials.host_app, e.credentials.mp
    local at = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. app.appid .. "&secret=" .. app.secret).access_token
    local _, _, _, raw = e.json("POST", "/wxa/business/runtime/createproduct?access_token=" .. at,
      { english_product_name = "P", chinese_product_name = "P", device_default_name = "p" })
    local pid = raw:match('"product_id":(%d+)')
    local mt = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret).access_token
    local g = e.json("POST", "/wxa/business/group/createid?access_token=" .. mt, { model_id = mp.model_id, group_name = "kept" }).group_id
    e.control("/__emulator/clock", { advance = 1000 })
    e.request("POST", "/__emulator/shutdown", "{}") -- graceful: saves
    e.stop()
    local e2 = emulator.start{ seed = 5, state = state }
    finally(function() e2.stop(); os.remove(state) end)
    assert.is_true(e2.control("/__emulator/clock").offset >= 1000)
    local info = e2.json("POST", "/wxa/business/group/getinfo?access_token=" .. mt, { group_id = g })
    assert.equal(0, info.errcode)
    assert.equal("kept", info.group_name)
    local products = e2.control("/__emulator/wmpf/products").products
    assert.equal(1, #products)
    local _, raw2 = e2.request("GET", "/__emulator/wmpf/products")
    assert.truthy(raw2:find('"product_id":' .. pid, 1, true))
    -- a new token after restart does not collide with the old ones
    local mt2 = e2.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret).access_token
    assert.not_equal(mt, mt2)
  end)
end)

describe("emulator HTTP server", function()
  local e
  local socket = require "socket"
  setup(function() e = emulator.start{ seed = 2 } end)
  teardown(function() if e then e.stop() end end)

  it("serves 300 concurrent connections", function()
    local c = e.credentials.wecom
    local req = "GET /cgi-bin/gettoken?corpid=" .. c.corpid .. "&corpsecret=" .. c.corpsecret .. " HTTP/1.1\r\nHost: x\r\n\r\n"
    local socks = {}
    for i = 1, 300 do
      socks[i] = assert(socket.connect("127.0.0.1", e.port))
      socks[i]:settimeout(10)
    end
    for i = 1, 300 do socks[i]:send(req) end
    local tokens = {}
    for i = 1, 300 do
      assert.equal("HTTP/1.1 200 OK", socks[i]:receive("*l"))
      local len
      repeat
        local h = socks[i]:receive("*l")
        len = len or tonumber(h:match("^Content%-Length: (%d+)"))
      until h == ""
      tokens[cjson.decode((socks[i]:receive(len))).access_token] = true
      socks[i]:close()
    end
    local n = 0
    for _ in pairs(tokens) do n = n + 1 end
    assert.equal(1, n) -- WeCom returns the same token within validity
  end)

  it("answers Expect: 100-continue at once", function()
    local s = assert(socket.connect("127.0.0.1", e.port))
    s:settimeout(0.5)
    local body = cjson.encode{ grant_type = "client_credential", appid = "wxa000000000000001",
      secret = "a0000000000000000000000000000001", pad = string.rep("x", 2000) }
    s:send("POST /cgi-bin/stable_token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " .. #body .. "\r\n\r\n")
    assert.equal("HTTP/1.1 100 Continue", s:receive("*l"))
    assert.equal("", s:receive("*l"))
    s:send(body)
    assert.equal("HTTP/1.1 200 OK", s:receive("*l"))
    s:close()
  end)

  it("closes after Connection: close and after HTTP/1.0", function()
    for _, v in ipairs{ "HTTP/1.1\r\nConnection: close", "HTTP/1.0" } do
      local s = assert(socket.connect("127.0.0.1", e.port))
      s:settimeout(5)
      s:send("GET /__emulator/health " .. v .. "\r\nHost: x\r\n\r\n")
      local all = s:receive("*a") -- returns only when the server closes
      assert.truthy(all:find("Connection: close", 1, true))
      s:close()
    end
  end)

  it("serves the control API to loopback peers only", function()
    local f = io.popen("hostname -I 2>/dev/null")
    local ip = (f:read("*a") or ""):match("(%d+%.%d+%.%d+%.%d+)")
    f:close()
    if not ip or ip:match("^127%.") then return pending("no non-loopback address on this machine") end
    local wide = emulator.start{ seed = 2, args = { "--host", "0.0.0.0" } }
    finally(function() wide.stop() end)
    local base = "http://" .. ip .. ":" .. wide.port
    local http = require "socket.http"
    local body, status = http.request(base .. "/__emulator/health")
    assert.equal(403, status)
    body, status = http.request(base .. "/cgi-bin/token?grant_type=client_credential&appid=wxa000000000000001&secret=a0000000000000000000000000000001")
    assert.equal(200, status)
    assert.truthy(body:find("access_token", 1, true))
  end)
end)

describe("wxhw emulator command line", function()
  it("refuses an unreadable --state file and leaves it untouched", function()
    local path = os.tmpname()
    local f = io.open(path, "w"); f:write("not json {"); f:close()
    local p = io.popen("lua5.4 ./bin/wxhw emulator --state " .. path .. " 2>&1; echo EXIT=$?")
    local out = p:read("*a"); p:close()
    assert.truthy(out:find("EXIT=1", 1, true), out)
    assert.truthy(out:find("not an emulator state", 1, true))
    f = io.open(path); local kept = f:read("*a"); f:close()
    os.remove(path)
    assert.equal("not json {", kept)
  end)

  it("rejects bad options with exit status 2", function()
    for _, a in ipairs{ "--port abc", "--port 70000", "--bogus", "--seed" } do
      local p = io.popen("lua5.4 ./bin/wxhw emulator " .. a .. " 2>&1; echo EXIT=$?")
      local out = p:read("*a"); p:close()
      assert.truthy(out:find("EXIT=2", 1, true), a .. ": " .. out)
      assert.truthy(out:find("usage", 1, true))
    end
  end)
end)

describe("emulator in-process #lua54", function()
  it("runs inside a Lua 5.4 program stepped by its own loop", function()
    if _VERSION ~= "Lua 5.4" then return end
    local socket = require "socket"
    local emu = require("wxhw.emulator").start{ port = 0, seed = 2 }
    finally(function() emu:close() end)
    local c = assert(socket.connect("127.0.0.1", emu.port))
    c:settimeout(0)
    c:send("GET /cgi-bin/token?grant_type=client_credential&appid=wxa000000000000001&secret=a0000000000000000000000000000001 HTTP/1.1\r\nHost: x\r\n\r\n")
    local got = ""
    local deadline = socket.gettime() + 5
    while not got:find('"expires_in":7200', 1, true) and socket.gettime() < deadline do
      emu:step(0.01)
      local d, _, partial = c:receive(4096)
      got = got .. (d or partial or "")
    end
    c:close()
    assert.truthy(got:find('"expires_in":7200', 1, true))
    assert.equal(1, emu.counters.token_fetches["token:wxa000000000000001"])
  end)
end)

-- Every call flow end to end with the emulator playing WeChat: it pushes
-- iot_voip_notify (secure mode) to the gateway process (examples/gateway.lua,
-- Lua HTTP server + supervisor + simulated workers, sessions in Redis) and
-- retransmits when the reply is late. The simulated user is scripted per call
-- through the payload ("sim:..."), see docs/call-worker.md.
local socket = require "socket"
local cjson = require "cjson"
local emulator = require "support.emulator"
local redis = require "support.redis"
local call = require "wxhw.call"
local kv = require "wxhw.call.store"
local remote_mod = require "wxhw.call.remote"

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function read(p) local f = io.open(p); if not f then return "" end local s = f:read("*a"); f:close(); return s end

local function http_get(port, path)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(3)
  c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  local s = c:receive("*a")
  c:close()
  return s and s:match("\r\n\r\n(.*)$")
end

-- the gateway's call capacity: a few more than the most calls a test holds at once
local MAX_CALLS = 6

describe("call flows with the emulator #slow #nosan", function()
  local e, r, dir, gw_pid, gw_port, calls, remote, cred

  local function stats() return cjson.decode(http_get(gw_port, "/stats")) end

  local function wait(room, state, secs)
    local deadline = socket.gettime() + (secs or 5)
    local s
    repeat
      s = calls:get(room)
      if s and s.state == state then return state end
      socket.sleep(0.02)
    until socket.gettime() > deadline
    return s and s.state
  end

  local n = 0
  local function device_call(payload, sn)
    n = n + 1
    return e.control("/__emulator/callbacks/mp/voip", { sn = sn or ("EMU-SN-" .. n), payload = payload or "",
                                                        model_id = cred.model_id, openid = "oUser" .. n })
  end

  setup(function()
    r = redis.start()
    e = emulator.start{ seed = 9 }
    cred = e.credentials.mp
    local p = io.popen("mktemp -d /tmp/wxhw-emu-gw.XXXXXX"); dir = p:read("*l"); p:close()
    local conf = dir .. "/gw.lua"
    local f = assert(io.open(conf, "w"))
    local oh = e.credentials.openhw
    f:write(([[
local tickets = {}
return {
  mp = { token = %q, encoding_aes_key = %q, appid = %q },
  wecom = { token = %q, encoding_aes_key = %q, receive_id = %q,
            handlers = { model_ticket = function(msg) tickets[#tickets + 1] = msg.event.model_ticket end } },
  http = { host = "127.0.0.1", port = 0 },
  calls = { socket_path = %q, ring_timeout = 1, redis = { host = %q, port = %d }, max_calls = %d,
            notify_device = function(s)
              local f = io.open(%q, "a"); f:write(s.sn, " ", s.room_id, " ", tostring(s.server_token), "\n"); f:close()
            end,
            worker = { "./bin/wxhw", "call-worker", "--simulate", "--answer-after", "0.1" } },
}]]):format(cred.msg_token, cred.encoding_aes_key, cred.appid, oh.callback_token, oh.encoding_aes_key,
            oh.service_corpid, dir .. "/calls.sock", r.host, r.port, MAX_CALLS, dir .. "/notified.txt"))
    f:close()
    local log = dir .. "/gw.log"
    local pp = io.popen(("env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/5.4/?.so;;' "
      .. "lua5.4 examples/gateway.lua %s >%s 2>&1 & echo $!"):format(sh_quote(conf), sh_quote(log)))
    gw_pid = tonumber(pp:read("*l")); pp:close()
    local deadline = socket.gettime() + 10
    repeat
      gw_port = tonumber(read(log):match("WXHW_GATEWAY http=(%d+)"))
      socket.sleep(0.02)
    until gw_port or socket.gettime() > deadline
    assert(gw_port, "gateway did not start: " .. read(log))
    e.control("/__emulator/callbacks", { mp_url = "http://127.0.0.1:" .. gw_port .. "/wx/push",
                                         openhw_url = "http://127.0.0.1:" .. gw_port .. "/wecom/openhw" })
    calls = call.new{ store = assert(kv.redis{ host = r.host, port = r.port }) }
    remote = remote_mod.new{ socket_path = dir .. "/calls.sock" }
  end)

  teardown(function()
    if gw_pid then os.execute("kill " .. gw_pid .. " 2>/dev/null") end
    if e then e.stop() end
    if r then r.stop() end
    if dir then os.execute("rm -rf " .. sh_quote(dir)) end
  end)

  it("answer, then the device hangs up", function()
    local res = device_call()
    assert.equal("ringing", res.outcome)
    assert.equal(1, res.attempts)
    assert.equal("TALKING", wait(res.roomid, "TALKING"))
    local s = calls:get(res.roomid)
    assert.equal(res.server_token, s.server_token) -- the credentials WeChat pushed
    assert.equal("HANGUP_BY_CALLER", assert(remote:call("hangup", res.roomid, "device")).state)
    assert.equal("HANGUP_BY_CALLER", calls:get(res.roomid).state)
  end)

  it("the user hangs up, rejects, does not answer", function()
    local a = device_call("sim:user_hangup_after=0.2")
    local b = device_call("sim:reject_after=0.1")
    local c = device_call("sim:no_answer=1")
    assert.equal("HANGUP_BY_CALLEE", wait(a.roomid, "HANGUP_BY_CALLEE"))
    assert.equal("REJECTED", wait(b.roomid, "REJECTED"))
    assert.equal("TIMEOUT", wait(c.roomid, "TIMEOUT", 4))
    assert.equal("TIMEOUT", calls:get(c.roomid).reason)
  end)

  it("busy: a second call to a device in a call is cancelled", function()
    local a = device_call(nil, "EMU-BUSY")
    assert.equal("TALKING", wait(a.roomid, "TALKING"))
    local b = device_call(nil, "EMU-BUSY")
    assert.equal("cancelled", b.outcome)
    assert.equal(1, b.reply_errcode)
    assert.equal("BUSY", calls:get(b.roomid).state)
    remote:call("hangup", a.roomid, "user")
    assert.equal("HANGUP_BY_CALLEE", calls:get(a.roomid).state)
  end)

  it("a worker crash aborts the call", function()
    local a = device_call("sim:crash_after=0.3")
    assert.equal("ABORTED", wait(a.roomid, "ABORTED"))
  end)

  it("pushes retransmitted after a late reply are answered once, without a second worker", function()
    local before = stats().supervisor.started
    e.control("/__emulator/callbacks", { timeout_ms = 1 })
    -- the gateway answers a retransmission (the reply kept from the first) in
    -- well under 1 ms: stopped, it answers all three copies too late
    os.execute("kill -STOP " .. gw_pid)
    local ok, res = pcall(device_call)
    os.execute("kill -CONT " .. gw_pid)
    assert(ok, res)
    e.control("/__emulator/callbacks", { timeout_ms = 5000 })
    assert.equal(3, res.attempts)          -- WeChat gave up: every reply came too late
    assert.equal("failed", res.outcome)
    socket.sleep(0.3)
    assert.equal(before + 1, stats().supervisor.started)
    local log = e.control("/__emulator/callbacks").log
    local attempts = 0
    for _, entry in ipairs(log) do if entry.event == "iot_voip_notify" and entry.outcome == "retry" then attempts = attempts + 1 end end
    assert.truthy(attempts >= 2)
    remote:call("hangup", res.roomid, "device")
  end)

  it("server-initiated call through /wxa/business/iot/voip/call", function()
    local tok = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. cred.appid .. "&secret=" .. cred.secret)
    e.control("/__emulator/mp/voip_authorize", { openid = "oSrv", sn = "EMU-SRV", model_id = cred.model_id })
    local api_calls = call.new{ store = calls.store, api = function(path, body)
      local t, status = e.json("POST", path .. "?access_token=" .. tok.access_token, body)
      if status ~= 200 or t.errcode ~= 0 then return nil, { message = "errcode " .. tostring(t.errcode) } end
      return t
    end }
    local room, payload = assert(api_calls:server_call{ sn = "EMU-SRV", model_id = cred.model_id, openid = "oSrv",
                                                       room_type = "voice" })
    assert.equal("TALKING", wait(room, "TALKING"))
    local s = calls:get(room)
    assert.equal("server", s.direction)
    assert.equal(payload, s.payload)
    assert.equal("voice", s.room_type)
    remote:call("hangup", room, "device")
    -- not authorised: WeChat refuses, nothing is left pending
    assert.is_nil((api_calls:server_call{ sn = "EMU-SRV2", model_id = cred.model_id, openid = "oSrv" }))
  end)

  it("phone → device: the device is notified (without credentials) and the call is answered", function()
    local payload = assert(remote:call("prepare_phone_call", { sn = "EMU-PH", model_id = cred.model_id }))
    local res = device_call(payload, "EMU-PH")
    assert.equal("ringing", res.outcome)
    assert.equal("TALKING", wait(res.roomid, "TALKING"))
    assert.equal("phone_to_device", calls:get(res.roomid).direction)
    assert.equal("EMU-PH " .. res.roomid .. " nil\n", read(dir .. "/notified.txt"))
    remote:call("hangup", res.roomid, "user")
    assert.equal("HANGUP_BY_CALLEE", calls:get(res.roomid).state)
  end)

  it("maximum duration: a prepared time_limit ends a talking call", function()
    local payload = assert(remote:call("prepare_device_call", { sn = "EMU-TL", model_id = cred.model_id, openid = "oTL",
                                                               time_limit = 0.5 }))
    local res = device_call(payload, "EMU-TL")
    assert.equal("TALKING", wait(res.roomid, "TALKING"))
    assert.equal("HANGUP_BY_CALLER", wait(res.roomid, "HANGUP_BY_CALLER", 3))
    local s = calls:get(res.roomid)
    assert.equal("TIMEOUT", s.reason)
    assert.truthy(s.ended_at - s.talk_at >= 0.5)
  end)

  it("overload: past max_calls the push is answered errcode 1 (WeChat cancels), the call is BUSY, none is lost", function()
    -- the earlier tests' workers are gone first
    local deadline = socket.gettime() + 5
    while stats().workers > 0 and socket.gettime() < deadline do socket.sleep(0.05) end
    assert.equal(0, stats().workers)
    local rooms = {}
    for i = 1, MAX_CALLS do
      local res = device_call(nil, "EMU-CAP" .. i)
      assert.equal("ringing", res.outcome)
      rooms[i] = res.roomid
    end
    local res = device_call(nil, "EMU-CAP-X")
    assert.equal("cancelled", res.outcome)
    assert.equal(1, res.attempts)
    assert.equal(1, res.reply_errcode)
    local s = calls:get(res.roomid)
    assert.equal("BUSY", s.state)
    assert.equal("call capacity reached", s.error)
    assert.equal(MAX_CALLS, stats().workers)
    for _, room in ipairs(rooms) do
      assert.equal("TALKING", wait(room, "TALKING"))
      assert.equal("HANGUP_BY_CALLER", assert(remote:call("hangup", room, "device")).state)
    end
  end)

  it("WeCom model_ticket reaches the openhw handler within its deadline", function()
    local res = e.control("/__emulator/callbacks/openhw/model_ticket", {})
    assert.is_true(res.ok, tostring(res.reason))
  end)
end)

-- Call orchestration without processes: pushes go through the real callback
-- gateway; the worker is a recorder implementing the worker interface
-- (start/hangup/stop), the part the process supervisor fills in elsewhere.
local call = require "wxhw.call"
local auth_mod = require "wxhw.call.auth"
local kv = require "wxhw.call.store"
local callback = require "wxhw.callback"
local msgcrypt = require "wxhw.msgcrypt"
local cjson = require "cjson"

local TOKEN, KEY, APPID = "tok", string.rep("B", 43), "wx1111111111111111"

local function recorder(fail)
  local w = { started = {}, hangups = {}, stopped = {} }
  function w:start(s) if fail then return nil, { message = "exec failed" } end self.started[#self.started + 1] = s.room_id; return true end
  function w:hangup(s, reason) self.hangups[#self.hangups + 1] = { s.room_id, reason } end
  function w:stop(s) self.stopped[#self.stopped + 1] = s.room_id end
  return w
end

local room_seq = 0
local function push_msg(sn, payload, room)
  room_seq = room_seq + 1
  return { ToUserName = "gh_1", FromUserName = "o-user", CreateTime = 1700000000 + room_seq, MsgType = "event",
           Event = "iot_voip_notify", Action = "join_voip_room", Payload = payload or "",
           RoomId = room or ("wxf830863afde621ebWmpfVoip" .. room_seq), SessionKey = "sk" .. room_seq,
           ServerToken = "st" .. room_seq, ModelId = "model-1", Sn = sn or "SN1" }
end

describe("wxhw.call flows", function()
  local now, store, worker, calls, seen, gw, mc

  local function deliver(msg)
    local body, sig = mc:push_body(cjson.encode(msg), "mp_json", 1700000000, "n" .. room_seq, "gh_1")
    local st, _, reply = gw("POST", { timestamp = "1700000000", nonce = "n" .. room_seq, encrypt_type = "aes",
                                      msg_signature = sig }, {}, body)
    assert.equal(200, st)
    -- the VoIP push's answer is plaintext JSON (cloud-server-sdk)
    local r = cjson.decode(reply)
    assert.is_nil(r.Encrypt)
    return r
  end

  before_each(function()
    now, store, worker, seen = 1000, kv.memory(), recorder(), {}
    calls = call.new{ store = store, worker = worker, clock = function() return now end,
                      on_transition = function(s, from, to) seen[#seen + 1] = tostring(from) .. ">" .. to end }
    mc = msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID }
    gw = callback.mini_program{ token = TOKEN, encoding_aes_key = KEY, appid = APPID, max_skew = false,
                                handlers = calls:mp_handlers(), dedup = { store = store } }
  end)

  it("device → phone: prepared payload, push answered errcode 0, worker started, answered, hung up by the user", function()
    local payload = assert(calls:prepare_device_call{ sn = "SN1", model_id = "model-1", openid = "o-user", time_limit = 60 })
    local msg = push_msg("SN1", payload)
    local r = deliver(msg)
    assert.same({ errcode = 0, errmsg = "ok" }, r)
    assert.same({ msg.RoomId }, worker.started)
    local s = calls:get(msg.RoomId)
    assert.equal("CALLING", s.state)
    assert.equal("device_to_phone", s.direction)
    assert.equal(60, s.time_limit)
    assert.equal(1030, s.ring_deadline)
    assert.is_nil(tostring(s):find(s.server_token, 1, true)) -- no credentials in tostring
    assert.is_nil(call.public(s).server_token)
    -- the worker repeats CALLING (no-op), then reports TALKING
    assert.equal("unchanged", select(2, calls:worker_status(msg.RoomId, 1)))
    now = 1005
    assert.equal("TALKING", calls:worker_status(msg.RoomId, 2).state)
    assert.equal(1005, calls:get(msg.RoomId).talk_at)
    local e = assert(calls:hangup(msg.RoomId, "user"))
    assert.equal("HANGUP_BY_CALLEE", e.state)
    assert.equal("MANUAL", e.reason)
    assert.same({ "nil>IDLE", "IDLE>CALLING", "CALLING>TALKING", "TALKING>HANGUP_BY_CALLEE" }, seen)
    assert.same({ msg.RoomId }, worker.stopped)
    assert.equal(1, #worker.hangups)
    assert.same({}, calls:active())
    assert.is_nil(store:get("dev:model-1:SN1"))
  end)

  it("rejects illegal worker reports without changing the session", function()
    local msg = push_msg("SN2")
    deliver(msg)
    local _, err = calls:worker_status(msg.RoomId, "HANGUP_BY_CALLER") -- not from CALLING
    assert.equal("state", err.kind)
    assert.equal("CALLING", calls:get(msg.RoomId).state)
    calls:worker_status(msg.RoomId, "REJECTED")
    local _, err2 = calls:worker_status(msg.RoomId, "TALKING")
    assert.matches("already ended", err2.message)
    assert.equal("REJECTED", calls:get(msg.RoomId).state)
    assert.equal("REJECT", calls:get(msg.RoomId).reason)
    assert.is_nil(select(1, calls:worker_status(msg.RoomId, 42)))
  end)

  it("phone → device: the device is notified and the call can be rejected by the user while ringing", function()
    local notified = {}
    calls.notify_device = function(s) notified[#notified + 1] = s end
    local payload = calls:prepare_phone_call{ sn = "SN3", model_id = "model-1" }
    local msg = push_msg("SN3", payload)
    assert.equal(0, deliver(msg).errcode)
    assert.equal(1, #notified)
    assert.equal("phone_to_device", notified[1].direction)
    assert.is_nil(notified[1].session_key)
    assert.equal("REJECTED", calls:hangup(msg.RoomId, "user").state)
  end)

  it("rejects a payload prepared for another device", function()
    local payload = calls:prepare_phone_call{ sn = "SN3", model_id = "model-1" }
    assert.equal(3, deliver(push_msg("SN9", payload)).errcode)
  end)

  it("device busy: a second call for the same device is refused and recorded as BUSY", function()
    local m1, m2 = push_msg("SN4"), push_msg("SN4")
    assert.equal(0, deliver(m1).errcode)
    local r = deliver(m2)
    assert.equal(1, r.errcode)
    assert.equal("BUSY", calls:get(m2.RoomId).state)
    assert.equal("CALLING", calls:get(m1.RoomId).state)
    assert.same({ m1.RoomId }, worker.started)
    assert.is_nil(calls:prepare_device_call{ sn = "SN4", model_id = "model-1", openid = "o" })
    -- once the first call ends the device is free again
    calls:hangup(m1.RoomId, "device")
    assert.equal("CANCELED", calls:get(m1.RoomId).state)
    assert.equal(0, deliver(push_msg("SN4")).errcode)
  end)

  it("ring timeout (default 30 s) and maximum duration (time_limit)", function()
    local m1 = push_msg("SN5")
    deliver(m1)
    now = 1029
    assert.same({}, calls:tick())
    now = 1030
    local ended = calls:tick()
    assert.equal(1, #ended)
    assert.equal("TIMEOUT", calls:get(m1.RoomId).state)
    assert.equal("TIMEOUT", calls:get(m1.RoomId).reason)
    assert.same({ m1.RoomId, 10 }, worker.hangups[1])

    local p = calls:prepare_device_call{ sn = "SN6", model_id = "model-1", openid = "o", time_limit = 5 }
    local m2 = push_msg("SN6", p)
    deliver(m2)
    calls:worker_status(m2.RoomId, "TALKING")
    now = now + 4
    calls:tick()
    assert.equal("TALKING", calls:get(m2.RoomId).state)
    now = now + 1
    calls:tick()
    local s = calls:get(m2.RoomId)
    assert.equal("HANGUP_BY_CALLER", s.state)
    assert.equal("TIMEOUT", s.reason)
  end)

  it("worker crash aborts the call and frees the device", function()
    local m = push_msg("SN7")
    deliver(m)
    calls:worker_status(m.RoomId, "TALKING")
    local s = calls:worker_exited(m.RoomId, "signal 9")
    assert.equal("ABORTED", s.state)
    assert.equal("signal 9", s.error)
    assert.is_nil(store:get("dev:model-1:SN7"))
    -- an exit after the call ended changes nothing
    assert.equal("ABORTED", calls:worker_exited(m.RoomId).state)
  end)

  it("a worker that cannot start aborts the call and answers non-zero", function()
    calls.worker = recorder(true)
    local m = push_msg("SN8")
    local r = deliver(m)
    assert.equal(4, r.errcode)
    assert.equal("ABORTED", calls:get(m.RoomId).state)
  end)

  it("malformed pushes get a non-zero errcode and create nothing", function()
    local m = push_msg("SN10"); m.ServerToken = nil
    assert.equal(40001, deliver(m).errcode)
    m = push_msg("SN10"); m.Action = "leave_room"
    assert.equal(40001, deliver(m).errcode)
    assert.same({}, calls:active())
    assert.same({}, worker.started)
  end)

  it("a retransmitted push (same RoomId) starts one worker only, even past the gateway's de-duplication", function()
    local m = push_msg("SN11")
    assert.equal(0, deliver(m).errcode)
    assert.equal(0, deliver(m).errcode)                  -- gateway de-duplication
    assert.equal(0, calls:join_voip_room(m).errcode)     -- e.g. after the dedup entry expired
    assert.equal(1, #worker.started)
  end)

  it("a second gateway on the same store sees sessions and enforces busy", function()
    local other = call.new{ store = store, worker = recorder(), clock = function() return now end }
    local m = push_msg("SN12")
    deliver(m)
    assert.equal("CALLING", other:get(m.RoomId).state)
    assert.equal(1, other:join_voip_room(push_msg("SN12")).errcode)
    assert.equal("TALKING", other:worker_status(m.RoomId, 2).state)
    assert.equal("TALKING", calls:get(m.RoomId).state)
  end)

  it("authorisation registry gates device → phone calls", function()
    local reg = auth_mod.new{ store = store, clock = function() return now end,
                              sn_ticket = function(sn, model) return "ticket-" .. sn .. "-" .. model end }
    calls.auth = reg
    assert.equal("ticket-SN13-model-1", reg:sn_ticket("SN13", "model-1"))
    local p, err = calls:prepare_device_call{ sn = "SN13", model_id = "model-1", openid = "o-a" }
    assert.is_nil(p); assert.equal(9, err.errcode)
    reg:record("SN13", "model-1", "o-a", 1)
    reg:record("SN13", "model-1", "o-b", 0)
    assert.is_true(reg:may_call("SN13", "model-1", "o-a"))
    assert.is_false(reg:may_call("SN13", "model-1", "o-b"))
    assert.is_false(reg:may_call("SN13", "model-1", "o-c"))
    assert.truthy(calls:prepare_device_call{ sn = "SN13", model_id = "model-1", openid = "o-a" })
    local l = reg:list("SN13", "model-1")
    assert.equal(2, #l)
    assert.equal("o-a", l[1].openid); assert.equal(1, l[1].status); assert.equal(1000, l[1].at)
    reg:revoke("SN13", "model-1", "o-a")
    assert.is_false(reg:may_call("SN13", "model-1", "o-a"))
    assert.has_error(function() reg:record("SN:13", "model-1", "o", 1) end)
  end)

  it("server-initiated call posts /wxa/business/iot/voip/call and joins on the push", function()
    local posted
    calls.api = function(path, body) posted = { path, body }; return { errcode = 0, roomid = "room-srv" } end
    local room, payload = calls:server_call{ sn = "SN14", model_id = "model-1", openid = "o-a", room_type = "voice" }
    assert.equal("room-srv", room)
    assert.equal("/wxa/business/iot/voip/call", posted[1])
    assert.equal("voice", posted[2].room_type)
    assert.equal(payload, posted[2].payload)
    deliver(push_msg("SN14", payload, "room-srv"))
    local s = calls:get("room-srv")
    assert.equal("server", s.direction); assert.equal("voice", s.room_type)
  end)
end)

describe("wxhw.call on Redis", function()
  local redis = require "support.redis"
  local r, store
  setup(function() r = redis.start() end)
  teardown(function() if r then r.stop() end end)

  it("keeps sessions, busy locks and compare-and-set transitions in Redis", function()
    store = assert(kv.redis{ host = r.host, port = r.port, prefix = "t:" })
    local now = 50
    local a = call.new{ store = store, clock = function() return now end }
    local b = call.new{ store = assert(kv.redis{ host = r.host, port = r.port, prefix = "t:" }), clock = function() return now end }
    local m = push_msg("R1")
    assert.equal(0, a:join_voip_room(m).errcode)
    assert.equal("CALLING", b:get(m.RoomId).state)
    assert.equal(1, b:join_voip_room(push_msg("R1")).errcode)
    assert.equal("TALKING", b:worker_status(m.RoomId, "TALKING").state)
    assert.is_nil((a:worker_status(m.RoomId, "CALLING")))
    assert.equal(m.RoomId, store:get("dev:model-1:R1"))
    a:hangup(m.RoomId, "device")
    assert.equal("HANGUP_BY_CALLER", b:get(m.RoomId).state)
    assert.is_nil(store:get("dev:model-1:R1"))
    assert.is_true(store:cas("x", nil, "1")); assert.is_false(store:cas("x", nil, "2"))
    assert.is_true(store:cas("x", "1", nil)); assert.is_nil(store:get("x"))
    assert.is_true(store:add("y", "1", 0.05)); assert.is_false(store:add("y", "1"))
    require("socket").sleep(0.1)
    assert.is_nil(store:get("y"))
  end)
end)

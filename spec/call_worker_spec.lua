-- Worker supervision with real processes: the supervisor starts
-- `bin/wxhw call-worker --simulate` per call over a unix socket.
local call = require "wxhw.call"
local supervisor = require "wxhw.call.supervisor"
local frame = require "wxhw.relay.frame"
local socket = require "socket"

local push_msg = require("support.voip_push").join

local function setup_call(flags, o)
  o = o or {}
  local seen = {}
  local calls = call.new{ ring_timeout = o.ring_timeout or 5,
                          on_transition = function(_, _, to) seen[#seen + 1] = to end }
  local cmd = o.command or { "./bin/wxhw", "call-worker", "--simulate" }
  for _, f in ipairs(flags or {}) do cmd[#cmd + 1] = f end
  local stats = {}
  local sup = assert(supervisor.new{ calls = calls, command = cmd, connect_timeout = o.connect_timeout or 5,
                                     on_stats = function(room, st) stats[room] = st end })
  return calls, sup, seen, stats
end

local function wait_state(sup, calls, room, state, secs)
  sup:run{ seconds = secs or 5, until_fn = function() local s = calls:get(room); return s and s.state == state end }
  return calls:get(room).state
end

describe("call worker supervision #slow #nosan", function()
  local live = {}
  after_each(function() for _, s in ipairs(live) do s:close() end live = {} end)

  it("starts a worker, hands it the credentials, follows answer and a device hang-up", function()
    local calls, sup, seen, stats = setup_call{ "--answer-after", "0.1" }
    live[#live + 1] = sup
    local m = push_msg()
    assert.equal(0, calls:join_voip_room(m).errcode)
    assert.equal(1, sup:count())
    assert.equal("TALKING", wait_state(sup, calls, m.RoomId, "TALKING"))
    local pid = sup:worker(m.RoomId).pid
    assert.is_true(supervisor.alive(pid))
    assert.equal("HANGUP_BY_CALLER", calls:hangup(m.RoomId, "device").state)
    sup:run{ seconds = 3, until_fn = function() return stats[m.RoomId] ~= nil and sup:count() == 0 end }
    assert.is_true(stats[m.RoomId].credentials_ok)
    assert.equal(0, sup.counters.crashed)
    assert.same({ "IDLE", "CALLING", "TALKING", "HANGUP_BY_CALLER" }, seen)
    sup:run{ seconds = 1, until_fn = function() return not supervisor.alive(pid) end }
    assert.is_false(supervisor.alive(pid))
  end)

  it("reports the user's rejection, busy and hang-up as the SDK states", function()
    local calls, sup = setup_call{ "--reject-after", "0.1" }
    live[#live + 1] = sup
    local m = push_msg()
    calls:join_voip_room(m)
    assert.equal("REJECTED", wait_state(sup, calls, m.RoomId, "REJECTED"))

    local calls2, sup2 = setup_call{ "--busy" }
    live[#live + 1] = sup2
    local m2 = push_msg()
    calls2:join_voip_room(m2)
    assert.equal("BUSY", wait_state(sup2, calls2, m2.RoomId, "BUSY"))

    local calls3, sup3 = setup_call{ "--answer-after", "0.05", "--user-hangup-after", "0.2" }
    live[#live + 1] = sup3
    local m3 = push_msg()
    calls3:join_voip_room(m3)
    assert.equal("HANGUP_BY_CALLEE", wait_state(sup3, calls3, m3.RoomId, "HANGUP_BY_CALLEE"))
    assert.equal("MANUAL", calls3:get(m3.RoomId).reason)
  end)

  it("times out an unanswered call and stops its worker", function()
    local calls, sup = setup_call({ "--no-answer" }, { ring_timeout = 0.5 })
    live[#live + 1] = sup
    local m = push_msg()
    calls:join_voip_room(m)
    assert.equal("TIMEOUT", wait_state(sup, calls, m.RoomId, "TIMEOUT", 4))
    sup:run{ seconds = 3, until_fn = function() return sup:count() == 0 end }
    assert.equal(0, sup:count())
    assert.equal(0, sup.counters.crashed)
  end)

  it("aborts the call when the worker crashes, and frees the device", function()
    local calls, sup = setup_call{ "--answer-after", "0.05", "--crash-after", "0.3" }
    live[#live + 1] = sup
    local m = push_msg("SN-crash")
    calls:join_voip_room(m)
    assert.equal("ABORTED", wait_state(sup, calls, m.RoomId, "ABORTED"))
    assert.equal(1, sup.counters.crashed)
    assert.equal(0, calls:join_voip_room(push_msg("SN-crash")).errcode) -- the device can call again
  end)

  it("aborts when the worker never connects or cannot run", function()
    local calls, sup = setup_call(nil, { command = { "sleep", "30" }, connect_timeout = 0.4 })
    live[#live + 1] = sup
    local m = push_msg()
    calls:join_voip_room(m)
    local pid = sup:worker(m.RoomId).pid
    assert.equal("ABORTED", wait_state(sup, calls, m.RoomId, "ABORTED", 3))
    assert.matches("did not connect", calls:get(m.RoomId).error)
    sup:run{ seconds = 1, until_fn = function() return not supervisor.alive(pid) end }
    assert.is_false(supervisor.alive(pid))

    local calls2, sup2 = setup_call(nil, { command = { "/nonexistent/worker" } })
    live[#live + 1] = sup2
    local m2 = push_msg()
    calls2:join_voip_room(m2)
    assert.equal("ABORTED", wait_state(sup2, calls2, m2.RoomId, "ABORTED", 3))
  end)

  it("refuses a connection that does not present the call's token", function()
    local calls, sup = setup_call(nil, { command = { "sleep", "30" }, connect_timeout = 2 })
    live[#live + 1] = sup
    local m = push_msg()
    calls:join_voip_room(m)
    local c = require("socket.unix").stream()
    assert(c:connect(sup.socket_path))
    c:send(frame.control({ op = "hello", room_id = m.RoomId, token = "guess" }))
    sup:run{ seconds = 0.3 }
    c:settimeout(0.5)
    local data, err = c:receive(1)
    assert.is_nil(data)
    assert.equal("closed", err)
    c:close()
    assert.is_nil(sup:worker(m.RoomId).conn)
    socket.sleep(0)
  end)
end)

describe("supervisor restart #slow #nosan", function()
  it("aborts the calls whose workers a previous supervisor ran, and kills those workers", function()
    local kv = require "wxhw.call.store"
    local store = kv.memory()
    local path = os.tmpname() .. ".sock"
    local calls = call.new{ store = store, ring_timeout = 30 }
    local sup = assert(supervisor.new{ calls = calls, socket_path = path, command = { "./bin/wxhw", "call-worker", "--simulate", "--no-answer" } })
    local m = push_msg()
    calls:join_voip_room(m)
    sup:run{ seconds = 3, until_fn = function() local w = sup:worker(m.RoomId); return w and w.conn ~= nil end }
    local pid = sup:worker(m.RoomId).pid
    assert.equal(sup.owner, calls:get(m.RoomId).worker_owner)
    -- the supervisor dies without cleaning up: its sockets close (the reference
    -- worker notices and exits; recover() kills a worker that would not)
    sup.server:close(); for c in pairs(sup.conns) do c:close() end
    -- a new supervisor on the same socket path and store
    local calls2 = call.new{ store = store, ring_timeout = 30 }
    local sup2 = assert(supervisor.new{ calls = calls2, socket_path = path, command = { "true" } })
    assert.equal(1, sup2.counters.recovered)
    assert.equal("ABORTED", calls2:get(m.RoomId).state)
    assert.matches("restarted", calls2:get(m.RoomId).error)
    sup2:run{ seconds = 1, until_fn = function() return not supervisor.alive(pid) end }
    assert.is_false(supervisor.alive(pid))
    -- a call started by another supervisor is left alone
    local m2 = push_msg()
    calls2:join_voip_room(m2)
    local other = assert(supervisor.new{ calls = call.new{ store = store }, socket_path = path .. "2", command = { "true" } })
    assert.equal(0, other.counters.recovered)
    sup2:close(); other:close()
  end)
end)

describe("supervisor rpc #slow #nosan", function()
  local function answer(sup, c)
    c:settimeout(0)
    local d, got = frame.decoder(), nil
    local deadline = socket.gettime() + 2
    repeat
      sup:step(0.01)
      local data, err, partial = c:receive(4096)
      local fr = assert(d:push(data or partial or ""))
      got = fr[1] and frame.decode_control(fr[1])
    until got or err == "closed" or socket.gettime() > deadline
    c:close()
    return got
  end

  it("answers calls from other processes, also when the request arrives in pieces", function()
    local calls = call.new{}
    local sup = assert(supervisor.new{ calls = calls, command = { "sleep", "30" }, connect_timeout = 30 })
    local m = push_msg()
    local req = frame.control({ op = "rpc", method = "join_voip_room", args = { m } })
    local c = require("socket.unix").stream()
    assert(c:connect(sup.socket_path))
    c:send(req:sub(1, 10)); sup:run{ seconds = 0.05 }
    c:send(req:sub(11, 30)); sup:run{ seconds = 0.05 }
    c:send(req:sub(31))
    local res = answer(sup, c)
    assert.is_true(res.ok)
    assert.equal(0, res.result.errcode)
    assert.equal("CALLING", calls:get(m.RoomId).state)
    -- sessions come back without credentials
    local c2 = require("socket.unix").stream(); assert(c2:connect(sup.socket_path))
    c2:send(frame.control({ op = "rpc", method = "get", args = { m.RoomId } }))
    local got = answer(sup, c2)
    assert.equal("CALLING", got.result.state)
    assert.is_nil(got.result.server_token)
    -- only the call methods are reachable
    local c3 = require("socket.unix").stream(); assert(c3:connect(sup.socket_path))
    c3:send(frame.control({ op = "rpc", method = "transition", args = { m.RoomId, "TALKING" } }))
    assert.is_false(answer(sup, c3).ok)
    assert.equal("CALLING", calls:get(m.RoomId).state)
    sup:close()
  end)
end)

-- Overload: a host runs at most `max_calls` call workers; a call beyond is
-- refused at the push (BUSY, errcode 1: WeChat cancels it, no ringing)
-- instead of being admitted and lost. And a burst of workers starting at
-- once all reach the supervisor, even past its listen backlog.
local call = require "wxhw.call"
local supervisor = require "wxhw.call.supervisor"

local push = require("support.voip_push").join

local function setup_calls(o)
  local calls = call.new{ ring_timeout = 10 }
  local sup = assert(supervisor.new{ calls = calls, max_calls = o.max_calls, backlog = o.backlog,
    connect_timeout = o.connect_timeout or 5,
    command = { "./bin/wxhw", "call-worker", "--simulate", "--answer-after", "0.05" } })
  return calls, sup
end

local function all_in(sup, calls, rooms, state, secs)
  return sup:run{ seconds = secs or 5, until_fn = function()
    for _, r in ipairs(rooms) do
      local s = calls:get(r)
      if not s or s.state ~= state then return false end
    end
    return true
  end }
end

describe("call capacity #slow #nosan", function()
  local live = {}
  after_each(function() for _, s in ipairs(live) do s:close() end live = {} end)

  it("refuses the call beyond max_calls with BUSY (errcode 1) and admits again once a call ends", function()
    local calls, sup = setup_calls{ max_calls = 2 }
    live[#live + 1] = sup
    local a, b, c = push(), push(), push()
    assert.equal(0, calls:join_voip_room(a).errcode)
    assert.equal(0, calls:join_voip_room(b).errcode)
    local reply = calls:join_voip_room(c)
    assert.same({ errcode = 1, errmsg = "busy: call capacity reached" }, reply)
    local s = calls:get(c.RoomId)
    assert.equal("BUSY", s.state)
    assert.equal("call capacity reached", s.error)
    assert.equal(2, sup:count()) -- no worker was started for it
    -- WeChat's retransmission of the refused push gets the same answer
    assert.same(reply, calls:join_voip_room(c))
    assert.is_true(all_in(sup, calls, { a.RoomId, b.RoomId }, "TALKING"))
    -- the refused call did not take its device: once a slot is free it can call
    calls:hangup(a.RoomId, "device")
    sup:run{ seconds = 5, until_fn = function() return sup:count() < 2 end }
    local again = push(c.Sn)
    assert.equal(0, calls:join_voip_room(again).errcode)
    assert.is_true(all_in(sup, calls, { b.RoomId, again.RoomId }, "TALKING"))
  end)

  it("a worker pool that says no only at start() makes the call BUSY too, not ABORTED", function()
    local errors = require "wxhw.errors"
    local pool = { start = function() return errors.fail("busy", "no room in the pool") end,
                   stop = function() end, hangup = function() end }
    local calls = call.new{ worker = pool }
    local m = push()
    assert.same({ errcode = 1, errmsg = "busy: no room in the pool" }, calls:join_voip_room(m))
    assert.equal("BUSY", calls:get(m.RoomId).state)
    -- and the device is free again
    assert.is_nil(calls.store:get("dev:" .. m.ModelId .. ":" .. m.Sn))
  end)

  it("rejects a max_calls that is not a whole number >= 1 or false", function()
    local calls = call.new{}
    for _, bad in ipairs{ 0, -1, 1.5, "4", true } do
      assert.has_error(function() supervisor.new{ calls = calls, command = { "true" }, max_calls = bad } end)
    end
    local sup = assert(supervisor.new{ calls = calls, command = { "true" }, max_calls = false })
    assert.is_false(sup:full())
    sup:close()
    -- the default: a measured number of calls per core this process may use
    local d = supervisor.default_max_calls()
    assert.is_true(d >= supervisor.CALLS_PER_CORE and d % supervisor.CALLS_PER_CORE == 0, tostring(d))
  end)

  it("every worker of a burst reaches the supervisor, past a full listen backlog", function()
    -- 8 workers start while the supervisor is busy admitting (it accepts
    -- nothing meanwhile) and its backlog holds 2 connections: the others
    -- met a connect that luasocket reported as done but was refused, and
    -- waited for a join that never came until their calls were aborted
    local calls, sup = setup_calls{ max_calls = false, backlog = 2, connect_timeout = 4 }
    live[#live + 1] = sup
    local rooms = {}
    for i = 1, 8 do
      local m = push()
      rooms[i] = m.RoomId
      assert.equal(0, calls:join_voip_room(m).errcode)
    end
    require("socket").sleep(0.5) -- they all try to connect now
    assert.is_true(all_in(sup, calls, rooms, "TALKING", 8), (function()
      local t = {}
      for _, r in ipairs(rooms) do local s = calls:get(r); t[#t + 1] = s.state .. " " .. tostring(s.error) end
      return table.concat(t, "\n")
    end)())
    assert.equal(0, sup.counters.crashed)
  end)
end)

-- spec/run: alone (step deadlines of 50 ms)
-- Call worker processes under a supervisor, against what real processes do:
-- a call ended at another gateway (another OS process on the same Redis),
-- many calls in a row (no fd or zombie left), a worker that ignores stop and
-- SIGTERM, and a worker that stops reading (the gateway must not block).
local call = require "wxhw.call"
local kv = require "wxhw.call.store"
local supervisor = require "wxhw.call.supervisor"
local frame = require "wxhw.relay.frame"
local redis = require "support.redis"
local procs = require "support.token_procs"
local clock = require "wxhw.clock"

local push = require("support.voip_push").join

-- A call pushed to `calls` whose worker (under `sup`) has connected.
local function connected_call(calls, sup)
  local m = push()
  assert.equal(0, calls:join_voip_room(m).errcode)
  local w = sup:worker(m.RoomId)
  sup:run{ seconds = 5, until_fn = function() return w.conn ~= nil end }
  assert.truthy(w.conn)
  return m, w
end

-- A worker that says hello and then either never reads ("deaf") or reads and
-- ignores everything, stop included ("stubborn"); both outlive their socket.
local ODD_WORKER = [[
local frame = require "wxhw.relay.frame"
local socket = require "socket"
local c = require("socket.unix").stream()
assert(c:connect(os.getenv("WXHW_CALL_SOCKET")))
c:send(frame.control({ op = "hello", room_id = os.getenv("WXHW_CALL_ROOM"), token = os.getenv("WXHW_CALL_TOKEN") }))
if arg[1] == "deaf" then socket.sleep(120) end
c:settimeout(nil)
while true do
  local _, err = c:receive(1)
  if err == "closed" then socket.sleep(120) end
end
]]

local function odd_worker_cmd(mode)
  local path = os.tmpname()
  local f = assert(io.open(path, "w")); f:write(ODD_WORKER); f:close()
  -- SIGTERM ignored before exec stays ignored in the worker
  return { "bash", "-c", "trap '' TERM; exec " .. procs.lua .. " " .. path .. " " .. mode }, path
end

local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("*l"):match("^(%d+)"))
  f:close()
  return pid
end

-- How many descriptors are open, and what they are (for the failure message).
local function fds()
  local p = io.popen("ls -l /proc/" .. self_pid() .. "/fd")
  local n, list = 0, {}
  for line in p:lines() do
    local fd, target = line:match("(%d+) %-> (.*)$")
    if fd then n = n + 1; list[#list + 1] = fd .. "=" .. target end
  end
  p:close()
  return n, table.concat(list, " ")
end

local function zombie_children(pid)
  local p = io.popen("ps -o stat= --ppid " .. pid .. " 2>/dev/null")
  local n = 0
  for l in p:lines() do if l:match("^Z") then n = n + 1 end end
  p:close()
  return n
end

describe("call workers as processes #slow #nosan", function()
  local live = {}
  after_each(function() for _, s in ipairs(live) do s:close() end live = {} end)

  it("a call ended at another gateway stops its worker here", function()
    local r = redis.start()
    finally(function() r.stop() end)
    local calls = call.new{ ring_timeout = 30, store = assert(kv.redis{ host = r.host, port = r.port }) }
    local sup = assert(supervisor.new{ calls = calls, command = { "./bin/wxhw", "call-worker", "--simulate", "--no-answer" } })
    live[#live + 1] = sup
    local m, w = connected_call(calls, sup)
    -- the device hangs up through another gateway process
    local other = procs.spawn([[
      local calls = require("wxhw.call").new{ store = assert(require("wxhw.call.store").redis{ host = "127.0.0.1", port = tonumber(arg[1]) }) }
      local e, err = calls:hangup(arg[2], "device")
      print(e and e.state or tostring(err and err.message))]], r.port, m.RoomId)
    assert.equal("CANCELED\n", procs.wait_bounded(other, 10))
    sup:run{ seconds = 4, until_fn = function() return sup:count() == 0 end }
    assert.equal(0, sup:count())
    sup:run{ seconds = 2, until_fn = function() return not supervisor.alive(w.pid) end } -- a kill is not instant
    assert.is_false(supervisor.alive(w.pid))
    assert.equal(0, sup.counters.crashed)
    assert.equal("CANCELED", calls:get(m.RoomId).state)
  end)

  it("a supervisor restarting on another host with the same socket path leaves this host's calls alone", function()
    -- another host: a UTS namespace with its own host name (needs root)
    if os.execute("unshare --uts true 2>/dev/null") ~= true and os.execute("unshare --uts true 2>/dev/null") ~= 0 then
      pending("unshare --uts is not permitted here")
      return
    end
    local r = redis.start()
    finally(function() r.stop() end)
    local base = os.tmpname()
    finally(function() os.remove(base) end)
    local path = base .. ".sock"
    local calls = call.new{ ring_timeout = 30, store = assert(kv.redis{ host = r.host, port = r.port }) }
    local sup = assert(supervisor.new{ calls = calls, socket_path = path,
                                       command = { "./bin/wxhw", "call-worker", "--simulate", "--no-answer" } })
    live[#live + 1] = sup
    local m, w = connected_call(calls, sup)
    local code = [[
      local calls = require("wxhw.call").new{ store = assert(require("wxhw.call.store").redis{ host = "127.0.0.1", port = tonumber(arg[1]) }) }
      local sup = assert(require("wxhw.call.supervisor").new{ calls = calls, socket_path = arg[2], command = { "true" } })
      print(sup.counters.recovered)
      sup:close()]]
    local script = os.tmpname()
    local f = assert(io.open(script, "w")); f:write(code); f:close()
    finally(function() os.remove(script) end)
    local p = io.popen("unshare --uts sh -c 'hostname other-host && exec " .. procs.lua .. " " .. script .. " "
                       .. r.port .. " " .. path .. "' 2>&1")
    local out = p:read("*a"); p:close()
    assert.equal("0\n", out)
    sup:run{ seconds = 0.5 }
    assert.equal("CALLING", calls:get(m.RoomId).state)
    assert.is_true(supervisor.alive(w.pid))
    assert.equal(0, sup.counters.crashed)
  end)

  it("the talking calls of a host that died for good are aborted by another host's supervisor", function()
    local r = redis.start()
    finally(function() r.stop() end)
    local host_a = procs.spawn([[
      local calls = require("wxhw.call").new{ store = assert(require("wxhw.call.store").redis{ host = "127.0.0.1", port = tonumber(arg[1]) }) }
      local sup = assert(require("wxhw.call.supervisor").new{ calls = calls, heartbeat = 1,
        command = { "./bin/wxhw", "call-worker", "--simulate", "--answer-after", "0.05" } })
      calls:join_voip_room{ MsgType = "event", Event = "iot_voip_notify", Action = "join_voip_room", RoomId = "room-of-a",
        SessionKey = "k", ServerToken = "t", ModelId = "m", Sn = "SN-A", FromUserName = "o" }
      sup:run{ seconds = 5, until_fn = function() return calls:get("room-of-a").state == "TALKING" end }
      print(calls:get("room-of-a").state, sup:worker("room-of-a").pid)
      io.stdout:flush() -- LuaJIT's print does not flush
      require("socket").sleep(60)]], r.port)
    local line = host_a.line()
    local state, wpid = tostring(line):match("^(%u+)\t(%d+)")
    assert.equal("TALKING", state, line)
    -- the host dies: its supervisor and its worker
    host_a.kill()
    os.execute("kill -9 " .. wpid)
    procs.wait_bounded(host_a, 5)
    local calls = call.new{ store = assert(kv.redis{ host = r.host, port = r.port }) }
    local sup = assert(supervisor.new{ calls = calls, heartbeat = 1,
                                       command = { "./bin/wxhw", "call-worker", "--simulate", "--no-answer" } })
    live[#live + 1] = sup
    assert.equal(1, calls:join_voip_room(push("SN-A")).errcode) -- still busy: A may only be slow
    local t0 = clock.monotonic()
    sup:run{ seconds = 5, until_fn = function() return calls:get("room-of-a").state ~= "TALKING" end }
    local s = calls:get("room-of-a")
    assert.equal("ABORTED", s.state)
    assert.truthy(s.error:find("no heartbeat", 1, true), s.error)
    assert.is_true(clock.monotonic() - t0 < 3)
    assert.is_nil(calls.store:get("dev:m:SN-A"))
    assert.equal(0, calls:join_voip_room(push("SN-A")).errcode)
    -- its own calls it keeps while it beats
    sup:run{ seconds = 1.5 }
    assert.equal(1, #calls:active())
    assert.equal(1, sup.counters.orphans)
  end)

  it("many calls leave no file descriptor, zombie or process behind", function()
    local calls = call.new{ ring_timeout = 5 }
    local sup = assert(supervisor.new{ calls = calls, command = { "./bin/wxhw", "call-worker", "--simulate", "--reject-after", "0.05" } })
    live[#live + 1] = sup
    sup:run{ seconds = 0.1 }
    local before, before_list = fds()
    local pids, rooms = {}, {}
    for _ = 1, 3 do
      for _ = 1, 8 do
        local m = push()
        assert.equal(0, calls:join_voip_room(m).errcode)
        rooms[#rooms + 1] = m.RoomId
        pids[#pids + 1] = sup:worker(m.RoomId).pid
      end
      sup:run{ seconds = 10, until_fn = function() return sup:count() == 0 end }
      assert.equal(0, sup:count())
    end
    for _, room in ipairs(rooms) do assert.equal("REJECTED", calls:get(room).state) end
    local t0 = clock.monotonic()
    local function all_gone()
      for _, pid in ipairs(pids) do if supervisor.alive(pid) then return false end end
      return true
    end
    -- a worker's connection closes when the supervisor reads its end, which
    -- may come after the process is gone
    local function settled() return all_gone() and next(sup.conns) == nil end
    while not settled() and clock.monotonic() - t0 < 3 do sup:step(0.05) end
    assert.is_true(all_gone())
    assert.is_nil(next(sup.conns), "a worker connection is still open")
    local after, after_list = fds()
    assert.is_true(after <= before, ("%d fds before, %d after\nbefore: %s\nafter: %s"):format(before, after,
      before_list, after_list))
    assert.equal(0, zombie_children(self_pid()))
    assert.equal(0, sup.counters.crashed)
  end)

  it("connections that never identify themselves are closed after connect_timeout", function()
    local calls = call.new{}
    local sup = assert(supervisor.new{ calls = calls, command = { "true" }, connect_timeout = 0.3 })
    live[#live + 1] = sup
    local clients = {}
    for i = 1, 5 do
      clients[i] = require("socket.unix").stream()
      assert(clients[i]:connect(sup.socket_path))
    end
    clients[5]:send(frame.control({ op = "hello" }):sub(1, 10)) -- half a record
    sup:run{ seconds = 0.1 }
    local before = fds()
    sup:run{ seconds = 0.6 }
    for _, c in ipairs(clients) do
      c:settimeout(1)
      local data, err = c:receive(1)
      assert.is_nil(data)
      assert.equal("closed", err)
      c:close()
    end
    assert.is_true(fds() <= before - 5)
  end)

  it("a worker that ignores stop and SIGTERM is killed after stop_grace", function()
    local cmd, path = odd_worker_cmd("stubborn")
    finally(function() os.remove(path) end)
    local calls = call.new{ ring_timeout = 30 }
    local sup = assert(supervisor.new{ calls = calls, command = cmd, stop_grace = 0.5 })
    live[#live + 1] = sup
    local m, w = connected_call(calls, sup)
    os.execute("kill -TERM " .. w.pid)
    sup:run{ seconds = 0.2 }
    assert.is_true(supervisor.alive(w.pid)) -- it really ignores SIGTERM
    assert.equal("CANCELED", calls:hangup(m.RoomId, "device").state)
    local t0 = clock.monotonic()
    sup:run{ seconds = 3, until_fn = function() return not supervisor.alive(w.pid) end }
    assert.is_false(supervisor.alive(w.pid))
    assert.is_true(clock.monotonic() - t0 >= 0.45)
    assert.equal(0, sup:count())
    assert.equal("CANCELED", calls:get(m.RoomId).state) -- killed after the end, not ABORTED
  end)

  it("a worker that stops reading does not block the gateway or grow its memory", function()
    local cmd, path = odd_worker_cmd("deaf")
    finally(function() os.remove(path) end)
    local calls = call.new{ ring_timeout = 30 }
    local backlog = 2 * 1024 * 1024
    local sup = assert(supervisor.new{ calls = calls, command = cmd, max_backlog = backlog })
    live[#live + 1] = sup
    local m, w = connected_call(calls, sup)
    -- 16 MiB of media for a worker that reads nothing
    local rec = frame.encode(frame.H264, 0, 0, 0, 0, string.rep("v", 32 * 1024))
    local sent, refused, worst = 0, 0, 0
    for _ = 1, 512 do
      local t0 = clock.monotonic()
      if sup:send(m.RoomId, rec) then sent = sent + 1 else refused = refused + 1 end
      sup:step(0)
      local dt = clock.monotonic() - t0
      if dt > worst then worst = dt end
    end
    assert.is_true(refused > 0)
    assert.is_true(sent * #rec < backlog + 2 * 1024 * 1024, tostring(sent))
    assert.is_true(worst < 0.05, ("a send and a step took %.1f ms"):format(worst * 1000))
    -- meanwhile another call still gets through
    local calls2 = calls
    local m2 = push()
    sup.command = { "./bin/wxhw", "call-worker", "--simulate", "--answer-after", "0.05" }
    assert.equal(0, calls2:join_voip_room(m2).errcode)
    sup:run{ seconds = 5, until_fn = function() return calls:get(m2.RoomId).state == "TALKING" end }
    assert.equal("TALKING", calls:get(m2.RoomId).state)
  end)
end)

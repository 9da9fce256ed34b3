-- Two gateways on one Redis working on the same calls at once: the busy lock,
-- transitions decided on a state another gateway has just changed, a gateway
-- killed in the middle of a push, and the store's TTLs. Gateways are
-- wxhw.call objects on their own Redis connections, in this process (for an
-- exact interleaving) or in separate OS processes (truly at once).
local call = require "wxhw.call"
local kv = require "wxhw.call.store"
local redis = require "support.redis"
local procs = require "support.token_procs"
local clock = require "wxhw.clock"
local push = require("support.voip_push").join

-- The worker interface, recording; `on_hangup` runs inside calls:hangup/tick.
local function recorder(on_hangup)
  local w = { started = {}, hangups = {}, stopped = {} }
  function w:start(s) self.started[#self.started + 1] = s.room_id; return true end
  function w:hangup(s, reason)
    self.hangups[#self.hangups + 1] = { s.room_id, reason }
    if on_hangup then on_hangup(s) end
  end
  function w:stop(s) self.stopped[#self.stopped + 1] = s.room_id end
  return w
end

-- Code run by the gateway processes: a wxhw.call on its own connection.
local PRELUDE = [[
local call = require "wxhw.call"
local kv = require "wxhw.call.store"
local cjson = require "cjson"
local port, prefix = tonumber(arg[1]), arg[2]
local store = assert(kv.redis{ host = "127.0.0.1", port = port, prefix = prefix })
local function barrier(name, n)
  store.conn:command("INCR", prefix .. "bar:" .. name)
  local t0 = os.time()
  while tonumber(store.conn:command("GET", prefix .. "bar:" .. name)) < n do
    if os.time() - t0 > 10 then error("barrier " .. name .. " not reached") end
  end
end
]]

describe("call gateways racing on Redis #slow", function()
  local r, prefix_n = nil, 0
  setup(function() r = redis.start() end)
  teardown(function() if r then r.stop() end end)

  local function fresh()
    prefix_n = prefix_n + 1
    local prefix = "g" .. prefix_n .. ":"
    local function gw(o)
      o = o or {}
      o.store = o.store or assert(kv.redis{ host = r.host, port = r.port, prefix = prefix })
      return call.new(o)
    end
    return gw, prefix
  end

  it("a device hang-up decided while another gateway stores the answer is not lost", function()
    local gw = fresh()
    local b = gw()
    local answered
    local w = recorder(function(s) answered = { b:worker_status(s.room_id, "TALKING") } end)
    local a = gw{ worker = w }
    local m = push("SN-H1")
    assert.equal(0, a:join_voip_room(m).errcode)
    local e, err = a:hangup(m.RoomId, "device")
    local s = a:get(m.RoomId)
    assert.is_nil(err, err and tostring(err.message))
    -- whichever way the answer went, the device's hang-up ended the call
    assert.equal(s.state, e.state)
    assert.is_true(call.machine.is_final(s.state), s.state)
    if answered[1] then assert.equal("HANGUP_BY_CALLER", s.state) else assert.equal("CANCELED", s.state) end
    assert.is_nil(a.store:get("dev:m:SN-H1"))
    assert.same({}, a:active())
    assert.same({ m.RoomId }, w.stopped)
  end)

  it("the ring timeout never hangs up a call another gateway has just answered", function()
    local gw = fresh()
    local b = gw()
    local answer
    local w = recorder(function(s) answer = { b:worker_status(s.room_id, "TALKING") } end)
    local a = gw{ worker = w, ring_timeout = 5 }
    local m = push("SN-T1")
    assert.equal(0, a:join_voip_room(m).errcode)
    local ended = a:tick(clock.now() + 6)
    local s = a:get(m.RoomId)
    -- the worker is told to hang up only for a call that is stored as ended
    if #w.hangups > 0 then
      assert.equal("TIMEOUT", s.state)
      assert.same({ m.RoomId }, w.stopped)
      assert.equal(1, #ended)
      assert.is_nil(answer[1]) -- the answer came too late and changed nothing
    else
      assert.equal("TALKING", s.state)
      assert.equal(0, #ended)
    end
    assert.equal(1, #w.hangups) -- the hook ran, so this test saw the race
  end)

  it("hang-up and answer from two processes at once: every call ends, none is left talking", function()
    local gw, prefix = fresh()
    local a = gw()
    local n = 40
    local rooms = {}
    for i = 1, n do
      local m = push("SN-P" .. i, "race-room-" .. i)
      assert.equal(0, a:join_voip_room(m).errcode)
      rooms[i] = m.RoomId
    end
    -- the same loop in both processes: one hangs up as the device, one answers
    local code = PRELUDE .. [[
      local calls = call.new{ store = store }
      for i = 1, tonumber(arg[3]) do
        barrier(i, 2)
        local room = "race-room-" .. i
        local e, err
        if arg[4] == "hangup" then e, err = calls:hangup(room, "device") else e, err = calls:worker_status(room, "TALKING") end
        print(i, e and e.state or ("ERR " .. tostring(err and err.message)))
      end]]
    local hanger = procs.spawn(code, r.port, prefix, n, "hangup")
    local answerer = procs.spawn(code, r.port, prefix, n, "answer")
    local hout = procs.wait_bounded(hanger, 30)
    local aout = procs.wait_bounded(answerer, 30)
    local answered, cancelled = 0, 0
    for i = 1, n do
      local hs = hout:match("\n?" .. i .. "\t([^\n]+)")
      local as = aout:match("\n?" .. i .. "\t([^\n]+)")
      assert.is_truthy(hs, hout)
      assert.is_truthy(as, aout)
      local s = a:get(rooms[i])
      -- the hang-up always succeeds; the call ends either way
      assert.is_nil(hs:find("ERR", 1, true), "round " .. i .. ": " .. hs)
      assert.equal(s.state, hs)
      if as == "TALKING" then
        answered = answered + 1
        assert.equal("HANGUP_BY_CALLER", s.state)
      else
        cancelled = cancelled + 1
        assert.equal("CANCELED", s.state, "round " .. i)
        assert.truthy(as:find("already ended", 1, true), as)
      end
      assert.is_nil(a.store:get("dev:m:SN-P" .. i))
    end
    assert.equal(n, answered + cancelled)
    assert.same({}, a:active())
  end)

  it("two gateways ticking at once end each overdue call once and hang up its worker once", function()
    local gw, prefix = fresh()
    local a = gw{ ring_timeout = 5 }
    local n = 30
    local rooms = {}
    for i = 1, n do
      local m = push("SN-O" .. i)
      assert.equal(0, a:join_voip_room(m).errcode)
      rooms[i] = m.RoomId
      if i % 2 == 0 then assert.equal("TALKING", a:worker_status(m.RoomId, "TALKING").state) end
    end
    local code = PRELUDE .. [[
      local hangups = 0
      local calls = call.new{ store = store, worker = { hangup = function() hangups = hangups + 1 end } }
      barrier("tick", 2)
      local ended = calls:tick(tonumber(arg[3]))
      print(#ended, hangups)]]
    -- past the ring timeout: the ringing calls are overdue, the talking ones (no time limit) are not
    local at = clock.now() + 6
    local p1 = procs.spawn(code, r.port, prefix, at)
    local p2 = procs.spawn(code, r.port, prefix, at)
    local o1, o2 = procs.wait_bounded(p1, 20), procs.wait_bounded(p2, 20)
    local e1, h1 = o1:match("^(%d+)\t(%d+)")
    local e2, h2 = o2:match("^(%d+)\t(%d+)")
    assert.is_truthy(e1 and e2, o1 .. o2)
    assert.equal(n / 2, tonumber(e1) + tonumber(e2), o1 .. o2)
    assert.equal(n / 2, tonumber(h1) + tonumber(h2), o1 .. o2)
    for i = 1, n do
      local s = a:get(rooms[i])
      assert.equal(i % 2 == 0 and "TALKING" or "TIMEOUT", s.state)
      local ends = 0
      for _, h in ipairs(s.history) do if h[1] == "TIMEOUT" then ends = ends + 1 end end
      assert.equal(i % 2 == 0 and 0 or 1, ends)
    end
  end)

  it("the ring timeout in one process and answers in another: only calls stored as TIMEOUT are hung up", function()
    local gw, prefix = fresh()
    local a = gw{ ring_timeout = 5 }
    local n = 60
    for i = 1, n do assert.equal(0, a:join_voip_room(push("SN-Q" .. i, "ring-" .. i)).errcode) end
    local code = PRELUDE .. [[
      local hung = {}
      local calls = call.new{ store = store, worker = { hangup = function(_, s) hung[#hung + 1] = s.room_id end } }
      barrier("go", 2)
      if arg[4] == "tick" then
        calls:tick(tonumber(arg[3]))
        print(table.concat(hung, " "))
      else
        for i = 2, 60, 2 do calls:worker_status("ring-" .. i, "TALKING") end
      end]]
    local at = clock.now() + 6
    local ticker = procs.spawn(code, r.port, prefix, at, "tick")
    local answerer = procs.spawn(code, r.port, prefix, at, "answer")
    local hung = procs.wait_bounded(ticker, 20)
    procs.wait_bounded(answerer, 20)
    local told = {}
    for room in hung:gmatch("ring%-%d+") do told[room] = true end
    local timeouts = 0 -- the odd calls nobody answers always time out
    for i = 1, n do
      local s = a:get("ring-" .. i)
      assert.is_true(s.state == "TIMEOUT" or s.state == "TALKING", s.state)
      -- a worker is told to hang up exactly when its call is stored as timed out
      assert.equal(s.state == "TIMEOUT", told["ring-" .. i] == true, "ring-" .. i .. " " .. s.state)
      if s.state == "TIMEOUT" then timeouts = timeouts + 1 end
    end
    assert.is_true(timeouts >= n / 2)
  end)

  it("two pushes for one device at two processes at once: one call, the other BUSY; a stale lock is taken once", function()
    local gw, prefix = fresh()
    local a = gw()
    local n = 25
    -- devices S<i> for i > n/2 start with a lock left by a gateway that died
    -- after ending its call and before freeing the device
    for i = math.floor(n / 2) + 1, n do
      local m = push("SN-B" .. i, "stale-" .. i)
      assert.equal(0, a:join_voip_room(m).errcode)
      assert.equal("CANCELED", a:hangup(m.RoomId, "device").state)
      assert.is_true(a.store:set("dev:m:SN-B" .. i, m.RoomId))
    end
    local code = PRELUDE .. [[
      local calls = call.new{ store = store }
      for i = 1, tonumber(arg[3]) do
        barrier(i, 2)
        local room = "busy-" .. arg[4] .. "-" .. i
        local rep = calls:join_voip_room{ MsgType = "event", Event = "iot_voip_notify", Action = "join_voip_room",
          RoomId = room, SessionKey = "k", ServerToken = "t", ModelId = "m", Sn = "SN-B" .. i, FromUserName = "o" }
        print(i, rep.errcode)
      end]]
    local p1 = procs.spawn(code, r.port, prefix, n, "x")
    local p2 = procs.spawn(code, r.port, prefix, n, "y")
    local o1, o2 = procs.wait_bounded(p1, 30), procs.wait_bounded(p2, 30)
    for i = 1, n do
      local c1 = tonumber(o1:match("\n?" .. i .. "\t(%-?%d+)"))
      local c2 = tonumber(o2:match("\n?" .. i .. "\t(%-?%d+)"))
      assert.is_truthy(c1 and c2, o1 .. o2)
      local codes = { c1, c2 }
      table.sort(codes)
      assert.same({ 0, 1 }, codes, "device " .. i)
      local winner = (c1 == 0) and "busy-x-" .. i or "busy-y-" .. i
      local loser = (c1 == 0) and "busy-y-" .. i or "busy-x-" .. i
      assert.equal(winner, a.store:get("dev:m:SN-B" .. i))
      assert.equal("CALLING", a:get(winner).state)
      assert.equal("BUSY", a:get(loser).state)
    end
    -- every lock is freed by the end of its call
    for i = 1, n do
      local room = a.store:get("dev:m:SN-B" .. i)
      assert.truthy(a:hangup(room, "user"))
      assert.is_nil(a.store:get("dev:m:SN-B" .. i))
    end
    assert.same({}, a:active())
  end)

  it("one push reaching two processes at once is never answered 'ok' for a call that ends BUSY", function()
    local gw, prefix = fresh()
    local a = gw()
    local n = 30
    for i = 1, n do assert.equal(0, a:join_voip_room(push("SN-D" .. i)).errcode) end -- every device in a call
    local code = PRELUDE .. [[
      local calls = call.new{ store = store }
      for i = 1, tonumber(arg[3]) do
        barrier(i, 2)
        local rep, err = calls:join_voip_room{ MsgType = "event", Event = "iot_voip_notify", Action = "join_voip_room",
          RoomId = "dup-" .. i, SessionKey = "k", ServerToken = "t", ModelId = "m", Sn = "SN-D" .. i, FromUserName = "o" }
        print(i, rep and rep.errcode or "retry")
      end]]
    local p1 = procs.spawn(code, r.port, prefix, n)
    local p2 = procs.spawn(code, r.port, prefix, n)
    local o1, o2 = procs.wait_bounded(p1, 30), procs.wait_bounded(p2, 30)
    for i = 1, n do
      local c1 = o1:match("\n?" .. i .. "\t(%S+)")
      local c2 = o2:match("\n?" .. i .. "\t(%S+)")
      assert.is_truthy(c1 and c2, o1 .. o2)
      assert.equal("BUSY", a:get("dup-" .. i).state)
      -- WeChat takes whichever answer comes first: neither may let it ring
      for _, c in ipairs{ c1, c2 } do
        assert.is_true(c == "1" or c == "retry", "round " .. i .. ": " .. c1 .. " " .. c2)
      end
      assert.is_true(c1 == "1" or c2 == "1", "round " .. i .. ": the gateway that set the call up answers")
      -- the retransmission WeChat sends after a failed answer gets the outcome
      assert.equal(1, a:join_voip_room(push("SN-D" .. i, "dup-" .. i)).errcode)
    end
  end)

  it("a gateway killed while setting up a call does not leave its device busy for ever", function()
    local gw, prefix = fresh()
    local gate = procs.spawn(PRELUDE .. [[
      local calls = call.new{ store = store, ring_timeout = 5, worker = { start = function()
        io.write("starting\n"); io.flush(); require("socket").sleep(60) end } }
      calls:join_voip_room{ MsgType = "event", Event = "iot_voip_notify", Action = "join_voip_room",
        RoomId = "crashed-room", SessionKey = "k", ServerToken = "t", ModelId = "m", Sn = "SN-C", FromUserName = "o" }
      ]], r.port, prefix)
    assert.equal("starting", gate.line())
    gate.kill()
    procs.wait_bounded(gate, 5)
    local b = gw{ ring_timeout = 5 }
    assert.equal("IDLE", b:get("crashed-room").state)
    -- while the other gateway might still be setting it up, the device is busy
    assert.equal(1, b:join_voip_room(push("SN-C")).errcode)
    assert.equal(0, #b:tick(clock.now() + 1))
    -- past the ring timeout the call that never rang is aborted and the device freed
    local ended = b:tick(clock.now() + 6)
    assert.equal(1, #ended)
    assert.equal("ABORTED", b:get("crashed-room").state)
    assert.is_nil(b.store:get("dev:m:SN-C"))
    assert.equal(0, b:join_voip_room(push("SN-C")).errcode)
  end)

  it("a worker start that raises aborts the call and frees the device at once", function()
    local gw = fresh()
    local a = gw{ worker = { start = function() error("spawn exploded") end } }
    local m = push("SN-X")
    assert.equal(4, a:join_voip_room(m).errcode)
    local s = a:get(m.RoomId)
    assert.equal("ABORTED", s.state)
    assert.truthy(s.error:find("spawn exploded", 1, true))
    assert.is_nil(a.store:get("dev:m:SN-X"))
    assert.same({}, a:active())
  end)

  it("TTLs: live sessions and locks never expire, ended sessions are kept for keep_ended", function()
    local gw, prefix = fresh()
    local a = gw{ keep_ended = 1 }
    local m = push("SN-K")
    assert.equal(0, a:join_voip_room(m).errcode)
    assert.equal("-1", r.cli("PTTL", prefix .. "call:" .. m.RoomId))
    assert.equal("-1", r.cli("PTTL", prefix .. "dev:m:SN-K"))
    assert.equal("-1", r.cli("PTTL", prefix .. "act:" .. m.RoomId))
    assert.equal("TALKING", a:worker_status(m.RoomId, 2).state)
    assert.equal("HANGUP_BY_CALLEE", a:hangup(m.RoomId, "user").state)
    local ttl = tonumber(r.cli("PTTL", prefix .. "call:" .. m.RoomId))
    assert.is_true(ttl > 500 and ttl <= 1000, tostring(ttl))
    assert.equal("0", r.cli("EXISTS", prefix .. "act:" .. m.RoomId))
    -- a session evicted from the store mid-call frees its device for the next call
    local m2 = push("SN-K")
    assert.equal(0, a:join_voip_room(m2).errcode)
    r.cli("DEL", prefix .. "call:" .. m2.RoomId)
    local m3 = push("SN-K")
    assert.equal(0, a:join_voip_room(m3).errcode)
    assert.equal(m3.RoomId, a.store:get("dev:m:SN-K"))
    require("socket").sleep(1.1)
    assert.is_nil(a:get(m.RoomId))
    assert.equal("CALLING", a:get(m3.RoomId).state)
    -- marks left by a gateway that died before releasing its ended (or lost) call go at the next tick
    assert.is_true(a.store:set("act:" .. m.RoomId, "1"))
    assert.is_true(a.store:set("act:" .. m2.RoomId, "1"))
    assert.equal(0, #a:tick())
    assert.equal("0", r.cli("EXISTS", prefix .. "act:" .. m.RoomId))
    assert.equal("0", r.cli("EXISTS", prefix .. "act:" .. m2.RoomId))
    assert.equal("1", r.cli("EXISTS", prefix .. "act:" .. m3.RoomId))
  end)
end)

describe("call TTLs on the memory and shm stores", function()
  for _, kind in ipairs{ "memory", "shm" } do
    it(kind .. ": a live call never expires, an ended one is kept for keep_ended", function()
      local path = "/dev/shm/wxhw-spec-callttl-" .. math.random(1e9) .. ".kv"
      finally(function() os.remove(path) end)
      local store = kind == "memory" and kv.memory() or assert(kv.shm{ path = path, entries = 64, value_bytes = 2048 })
      local c = call.new{ store = store, keep_ended = 0.4, ring_timeout = 60 }
      local m = push("SN-TTL")
      assert.equal(0, c:join_voip_room(m).errcode)
      require("socket").sleep(0.5)
      assert.equal("CALLING", c:get(m.RoomId).state)
      assert.equal(m.RoomId, store:get("dev:m:SN-TTL"))
      assert.equal("CANCELED", c:hangup(m.RoomId, "device").state)
      require("socket").sleep(0.2)
      assert.equal("CANCELED", c:get(m.RoomId).state)
      require("socket").sleep(0.3)
      assert.is_nil(c:get(m.RoomId))
      assert.is_nil(store:get("dev:m:SN-TTL"))
    end)
  end
end)

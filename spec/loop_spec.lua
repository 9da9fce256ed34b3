-- wxhw.loop: the one select() reactor the HTTP server, the call supervisor
-- and the relay share in a process.
local socket = require "socket"
local clock = require "wxhw.clock"
local loop = require "wxhw.loop"

-- A connected TCP pair on loopback, both non-blocking.
local function pair()
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local a = assert(socket.connect("127.0.0.1", port))
  srv:settimeout(1)
  local b = assert(srv:accept())
  srv:close()
  a:settimeout(0); b:settimeout(0)
  return a, b
end

describe("wxhw.loop", function()
  it("calls on_read when a socket has data, and not after unregister", function()
    local l = loop.new()
    local a, b = pair()
    finally(function() a:close(); b:close() end)
    local got = {}
    l:register(b, function(s) got[#got + 1] = s:receive(5) end)
    a:send("hello")
    l:run{ seconds = 1, until_fn = function() return #got > 0 end }
    assert.same({ "hello" }, got)
    l:unregister(b)
    assert.is_false(l:registered(b))
    a:send("again")
    l:run{ seconds = 0.05 }
    assert.equal(1, #got)
  end)

  it("asks for writability only while on_write is set (a writable socket does not spin the loop)", function()
    local l = loop.new()
    local a, b = pair()
    finally(function() a:close(); b:close() end)
    local writes = 0
    local function on_write() writes = writes + 1; l:register(a, nil, nil) end
    l:register(a, nil, on_write)
    l:step(0.5)
    assert.equal(1, writes)
    -- nothing registered for writing: the turn waits its whole timeout
    local t0 = clock.monotonic()
    l:step(0.1)
    assert.is_true(clock.monotonic() - t0 >= 0.09)
    assert.equal(1, writes)
  end)

  it("keeps the select() sets right when sockets come and go in any order", function()
    local l = loop.new()
    local socks = {}
    for i = 1, 6 do
      local a, b = pair()
      socks[i] = { a, b }
      l:register(b, function() end)
    end
    finally(function() for _, p in ipairs(socks) do p[1]:close(); p[2]:close() end end)
    l:unregister(socks[2][2]); l:unregister(socks[5][2]); l:unregister(socks[6][2])
    assert.equal(3, #l.readers)
    for _, s in ipairs(l.readers) do assert.equal(s, l.readers[l.at_read[s]]) end
    local seen = {}
    for i, p in ipairs(socks) do
      l:register(p[2], function(s) seen[i] = s:receive(1) end)
    end
    for _, p in ipairs(socks) do p[1]:send("x") end
    l:run{ seconds = 1, until_fn = function() local n = 0; for _ in pairs(seen) do n = n + 1 end; return n == 6 end }
    for i = 1, 6 do assert.equal("x", seen[i]) end
  end)

  it("runs timers in order, ends a turn's wait at the next one, repeats and cancels", function()
    local l = loop.new()
    local order = {}
    l:after(0.06, function() order[#order + 1] = "b" end)
    l:after(0.02, function() order[#order + 1] = "a" end)
    local ticks = 0
    local every = l:every(0.01, function() ticks = ticks + 1 end)
    local cancelled = l:after(0.03, function() order[#order + 1] = "never" end)
    l:cancel(cancelled)
    local t0 = clock.monotonic()
    l:step(5) -- returns at the first timer, not after 5 s
    assert.is_true(clock.monotonic() - t0 < 1)
    l:run{ seconds = 0.12 }
    assert.same({ "a", "b" }, order)
    assert.is_true(ticks >= 5, tostring(ticks))
    l:cancel(every)
    local before = ticks
    l:run{ seconds = 0.05 }
    assert.equal(before, ticks)
  end)

  it("run returns true when until_fn holds, false when the seconds are over", function()
    local l = loop.new()
    local n = 0
    assert.is_true(l:run{ seconds = 2, until_fn = function() n = n + 1; return n == 3 end })
    local t0 = clock.monotonic()
    assert.is_false(l:run{ seconds = 0.1 })
    local took = clock.monotonic() - t0
    assert.is_true(took >= 0.09 and took < 0.5, tostring(took))
  end)

  it("one loop drives an HTTP server and a relay together", function()
    local l = loop.new()
    local srv = assert(require("wxhw.httpserver").new{ loop = l, handler = function() return 200, {}, "ok" end })
    local relay = require("wxhw.relay").new{ loop = l }
    local rport = relay:listen("127.0.0.1", 0)
    finally(function() srv:close(); relay:close() end)
    local c = assert(socket.connect("127.0.0.1", srv.port))
    c:settimeout(0)
    c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local d = assert(socket.connect("127.0.0.1", rport))
    d:send(require("wxhw.media.frame").control{ op = "hello", sn = "SN", model_id = "m" })
    local buf = ""
    relay:run{ seconds = 2, until_fn = function()
      local data, _, partial = c:receive("*a")
      buf = buf .. (data or partial or "")
      return buf:find("ok$") ~= nil and relay.counters.devices == 1
    end }
    c:close(); d:close()
    assert.matches("^HTTP/1.1 200", buf)
    assert.equal(1, relay.counters.devices)
  end)
end)

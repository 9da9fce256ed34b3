-- A device connection is unauthenticated until its hello is accepted: what
-- it may cost the relay before then is bounded (issue 14's class "bytes from
-- the network before anything is authenticated"). Before the fix a first
-- frame could declare 4 MB and be buffered whole, and a connection that never
-- said hello was kept for ever.
local relay_mod = require "wxhw.relay"
local frame = require "wxhw.relay.frame"
local socket = require "socket"
local clock = require "wxhw.clock"

describe("relay: a device before its hello", function()
  local relay, port, clients
  before_each(function()
    relay = relay_mod.new{ hello_timeout = 0.5 }
    port = relay:listen("127.0.0.1", 0)
    clients = {}
  end)
  after_each(function()
    for _, c in ipairs(clients) do c:close() end
    relay:close()
  end)

  local function connect()
    local c = assert(socket.connect("127.0.0.1", port))
    c:settimeout(0)
    clients[#clients + 1] = c
    relay:run{ seconds = 0.05 }
    return c
  end

  -- whether the relay closed c: a read sees the end of the stream
  local function closed_by_relay(c)
    local _, err = c:receive(1)
    return err == "closed"
  end

  local function open_conns()
    local n = 0
    for _ in pairs(relay.conns) do n = n + 1 end
    return n
  end

  it("closes a connection whose first frame is larger than a hello may be", function()
    local c = connect()
    -- a control frame that says 4 MB, then its bytes in 16 KB pieces
    local head = frame.encode(frame.CONTROL, 0, 0, 0, 0, ("x"):rep(16)):sub(1, 12) .. "\0\64\0\0"
    c:send(head)
    local piece = ("x"):rep(16384)
    for _ = 1, 16 do
      if closed_by_relay(c) then break end
      c:send(piece)
      relay:run{ seconds = 0.02 }
    end
    assert.is_true(closed_by_relay(c), "the relay buffers a 4 MB hello")
    assert.equal(0, open_conns())
    assert.equal(1, relay.counters.refused)
  end)

  it("closes a connection that says no hello within hello_timeout, and keeps one that did", function()
    local t0 = clock.monotonic()
    local silent = connect()
    local talker = connect()
    talker:send(frame.control{ op = "hello", sn = "SN1", model_id = "m" })
    relay:run{ seconds = 2, until_fn = function() return open_conns() < 2 end }
    local took = clock.monotonic() - t0
    relay:run{ seconds = 0.05 }
    assert.is_true(closed_by_relay(silent), "a silent connection is kept")
    assert.is_true(took >= 0.4 and took < 1.5, ("closed after %.2f s"):format(took))
    assert.is_false(closed_by_relay(talker))
    assert.equal(1, open_conns())
    assert.equal(1, relay.counters.devices)
  end)

  it("keeps at most max_pending connections before their hello, dropping the oldest", function()
    for _ = 1, 100 do
      local c = assert(socket.connect("127.0.0.1", port))
      clients[#clients + 1] = c
      relay:step(0)
    end
    relay:run{ seconds = 0.2 }
    local n = open_conns()
    assert.is_true(n <= relay_mod.MAX_PENDING, n .. " connections without a hello kept")
    local c = connect()
    c:send(frame.control{ op = "hello", sn = "SN4", model_id = "m" })
    relay:run{ seconds = 0.1 }
    assert.equal(1, relay.counters.devices)
    assert.is_false(closed_by_relay(c))
  end)

  it("still takes a hello and media sent in one piece, and a hello trickled byte by byte", function()
    local c = connect()
    c:send(frame.control{ op = "hello", sn = "SN2", model_id = "m" } .. frame.encode(frame.PCM16K, 0, 1, 1, 0, ("\0"):rep(640)))
    relay:run{ seconds = 0.1 }
    assert.equal(1, relay.counters.devices)
    local t = connect()
    local hello = frame.control{ op = "hello", sn = "SN3", model_id = "m" }
    for i = 1, #hello do t:send(hello:sub(i, i)); relay:run{ seconds = 0.005 } end
    relay:run{ seconds = 0.05 }
    assert.equal(2, relay.counters.devices)
    assert.equal(2, open_conns())
  end)
end)

--- The media relay: devices stream to wxhw over the device framing on TCP
-- (docs/framing.md); each device's media goes through a pipeline
-- (wxhw.relay.pipeline: IDR gating while TALKING, G.711 → 16 kHz PCM in
-- 20 ms frames, jitter buffer) to the worker of the device's active call.
--
--   local r = relay.new{ calls = calls, supervisor = sup, jitter_ms = 60,
--                        authenticate = function(hello) return true end }
--   local port = r:listen("127.0.0.1", 0)
--   r:run{ seconds = 60 }         -- also drives the supervisor (on the same wxhw.loop:
--                                 -- opts.loop, else the supervisor's)
--
-- A device connection starts with a control record
-- {"op":"hello","sn":"...","model_id":"...", ...}; `authenticate(hello)` (the
-- vendor's check, e.g. a device token) decides whether to keep it. Until then
-- a connection is anyone's: its first frame may hold at most HELLO_MAX bytes
-- and it must arrive within `hello_timeout` (5 s), or the connection is
-- closed (else a 4 MB first frame was buffered whole and a silent
-- connection kept for ever); at most `max_pending` (64) wait for their
-- hello at once, a new one closing the oldest (a flood of 1100 made
-- select() raise and the loop die). Media sent before the call is TALKING
-- is dropped.
local socket = require "socket"
local frame = require "wxhw.media.frame"
local pipeline = require "wxhw.relay.pipeline"
local clock = require "wxhw.clock"
local loop = require "wxhw.loop"

local M = { pipeline = pipeline, frame = frame, HELLO_MAX = 4096, HELLO_TIMEOUT = 5, MAX_PENDING = 64 }
local bind, accept, read, on_datagrams, deliver, expire -- defined below
M.__index = M

function M.new(opts)
  opts = opts or {}
  local sup = opts.supervisor
  if sup and opts.loop and opts.loop ~= sup.loop then
    error("relay.new: the supervisor must run on the relay's loop", 2)
  end
  local self = setmetatable({
    calls = opts.calls, sup = sup, jitter_ms = opts.jitter_ms or 60,
    authenticate = opts.authenticate, lookup_every = opts.lookup_every or 0.2,
    hello_timeout = opts.hello_timeout or M.HELLO_TIMEOUT, max_pending = opts.max_pending or M.MAX_PENDING,
    devices = {}, conns = {}, servers = {},
    counters = { devices = 0, refused = 0, frames_in = 0, frames_out = 0, undeliverable = 0, closed_bad = 0 },
    loop = opts.loop or sup and sup.loop or loop.new(),
  }, M)
  self.on_accept = function(srv) accept(self, srv) end
  self.on_read = function(c) read(self, c) end
  self.on_datagrams = function(u) on_datagrams(self, u, clock.monotonic()) end
  self.on_due = function() deliver(self) end
  self.expirer = self.loop:every(0.05, function() expire(self) end)
  deliver(self)
  return self
end

--- Listens for devices on TCP; returns the port.
function M:listen(host, port)
  local srv = assert(socket.bind(host or "127.0.0.1", port or 0))
  srv:settimeout(0)
  self.servers[#self.servers + 1] = srv
  self.loop:register(srv, self.on_accept)
  local _, p = srv:getsockname()
  return tonumber(p)
end

--- Binds a UDP port to a device for RTP: media = "h264" (video, 90 kHz)
-- or "pcmu" / "pcma" (G.711, 8 kHz). The port is the device's credential, so
-- bind it to an address only that device can reach (or a VPN). Returns the port.
function M:listen_rtp(o)
  if type(o) ~= "table" or type(o.sn) ~= "string" or type(o.model_id) ~= "string" then
    error("relay:listen_rtp: sn and model_id required", 2)
  end
  if o.media ~= "h264" and o.media ~= "pcmu" and o.media ~= "pcma" then
    error("relay:listen_rtp: media must be h264, pcmu or pcma", 2)
  end
  local u = assert(socket.udp())
  assert(u:setsockname(o.host or "127.0.0.1", o.port or 0))
  u:settimeout(0)
  local key = o.model_id .. ":" .. o.sn
  self.rtp_devices = self.rtp_devices or {}
  local d = self.rtp_devices[key]
  if not d then
    d = { sn = o.sn, model_id = o.model_id, pipe = pipeline.new{ jitter_ms = self.jitter_ms } }
    self.rtp_devices[key] = d
    self.devices[d] = true
    self.counters.devices = self.counters.devices + 1
  end
  self.udp = self.udp or {}
  self.udp[u] = { dev = d, media = o.media }
  self.loop:register(u, self.on_datagrams)
  local _, port = u:getsockname()
  return tonumber(port)
end

-- The next delivery is due at `at` (seconds, monotonic) or sooner.
local function due(self, at)
  if self.due_at and self.due_at <= at then return end
  self.loop:cancel(self.due_timer)
  self.due_at = at
  self.due_timer = self.loop:after(math.max(0, at - clock.monotonic()), self.on_due)
end

function on_datagrams(self, u, now)
  local b = self.udp[u]
  for _ = 1, 256 do
    local pkt = u:receive(65536)
    if not pkt then break end
    self.counters.frames_in = self.counters.frames_in + 1
    bind(self, b.dev, now)
    if b.media == "h264" then b.dev.pipe:rtp_video(pkt, now) else b.dev.pipe:rtp_audio(pkt, now, b.media) end
  end
  local nd = b.dev.pipe:next_due()
  if nd then due(self, nd) end
end

local function close_dev(self, c, bad)
  local d = self.conns[c]
  self.conns[c] = nil
  self.loop:unregister(c)
  -- a clean close keeps the device until its jitter buffer has drained
  if type(d) == "table" then
    if bad or not d.sn then self.devices[d] = nil else d.closing = true end
  end
  if bad then self.counters.closed_bad = self.counters.closed_bad + 1 end
  c:close()
end

-- Which call (if any) the device is in, and whether it is TALKING.
bind = function(self, d, now)
  if now - (d.looked_at or -1) < self.lookup_every then return end
  d.looked_at = now
  local room = self.calls and self.calls.store:get("dev:" .. d.model_id .. ":" .. d.sn)
  local s = room and self.calls:get(room)
  local talking = s and s.state == "TALKING" or false
  if room ~= d.room then
    d.pipe:set_talking(false)
    d.room = room
  end
  d.pipe:set_talking(talking)
end

-- Before a new connection: at max_pending connections without a hello,
-- the oldest of them goes.
local function make_room(self)
  local oldest, at, n = nil, math.huge, 0
  for c, d in pairs(self.conns) do
    if not d.sn then
      n = n + 1
      if d.opened < at then oldest, at = c, d.opened end
    end
  end
  if n >= self.max_pending and oldest then
    self.counters.refused = self.counters.refused + 1
    close_dev(self, oldest, true)
  end
end

local function on_records(self, c, d, frames, now)
  for _, fr in ipairs(frames) do
    self.counters.frames_in = self.counters.frames_in + 1
    if not d.sn then
      local hello = frame.decode_control(fr)
      if not hello or hello.op ~= "hello" or type(hello.sn) ~= "string" or type(hello.model_id) ~= "string"
          or (self.authenticate and not self.authenticate(hello)) then
        self.counters.refused = self.counters.refused + 1
        close_dev(self, c, true)
        return
      end
      d.sn, d.model_id = hello.sn, hello.model_id
      self.devices[d] = true
      self.counters.devices = self.counters.devices + 1
      bind(self, d, now)
    else
      bind(self, d, now)
      d.pipe:device_frame(fr, now)
    end
  end
  local nd = d.pipe:next_due()
  if nd then due(self, nd) end
end

-- Releases the frames that are due to the workers of their calls, then asks
-- the loop back when the next one is (at least every lookup_every, for the
-- calls' states).
function deliver(self)
  local now = clock.monotonic()
  self.due_at = nil
  local soonest = now + self.lookup_every
  for d in pairs(self.devices) do
    bind(self, d, now)
    local out = d.pipe:poll(now)
    for _, bytes in ipairs(out) do
      if d.room and self.sup and self.sup:send(d.room, bytes) then
        self.counters.frames_out = self.counters.frames_out + 1
      else
        self.counters.undeliverable = self.counters.undeliverable + 1
      end
    end
    if d.closing and d.pipe:queued() == 0 then self.devices[d] = nil end
    local nd = d.pipe:next_due()
    if nd and nd < soonest then soonest = nd end
  end
  due(self, soonest)
end

-- A connection that said no hello in time goes.
function expire(self)
  local now = clock.monotonic()
  for c, d in pairs(self.conns) do
    if not d.sn and now - d.opened > self.hello_timeout then
      self.counters.refused = self.counters.refused + 1
      close_dev(self, c, true)
    end
  end
end

function accept(self, srv)
  local nc = srv:accept()
  if not nc then return end
  nc:settimeout(0)
  nc:setoption("tcp-nodelay", true)
  make_room(self)
  self.conns[nc] = { dec = frame.decoder(), pipe = pipeline.new{ jitter_ms = self.jitter_ms }, opened = clock.monotonic() }
  self.loop:register(nc, self.on_read)
end

function read(self, c)
  local d = self.conns[c]
  local data, err, partial = c:receive(65536)
  data = data or partial
  if data and #data > 0 then
    local frames = d.dec:push(data)
    if not frames then close_dev(self, c, true) else on_records(self, c, d, frames, clock.monotonic()) end
    if self.conns[c] and not d.sn and d.dec:pending() > frame.HDR + M.HELLO_MAX then -- not a hello
      self.counters.refused = self.counters.refused + 1
      close_dev(self, c, true)
    end
  end
  if err == "closed" and self.conns[c] then close_dev(self, c) end
end

--- One turn of the loop: read devices, release due frames, drive the
-- supervisor (and whatever else shares the loop).
function M:step(max_wait) self.loop:step(max_wait or 0.02) end

--- Runs the loop: opts.seconds, or opts.until_fn() returning true to stop.
function M:run(opts) return self.loop:run(opts, 0.005) end

--- Pipeline statistics per device "model:sn".
function M:stats()
  local out = {}
  for d in pairs(self.devices) do out[d.model_id .. ":" .. d.sn] = d.pipe.stats end
  return out
end

function M:__tostring()
  local n = 0
  for _ in pairs(self.devices) do n = n + 1 end
  return ("wxhw.Relay(%d devices, %d frames in, %d out)"):format(n, self.counters.frames_in, self.counters.frames_out)
end

function M:close()
  local l = self.loop
  for c in pairs(self.conns) do l:unregister(c); c:close() end
  for _, s in ipairs(self.servers) do l:unregister(s); s:close() end
  for u in pairs(self.udp or {}) do l:unregister(u); u:close() end
  l:cancel(self.expirer)
  l:cancel(self.due_timer)
  self.udp, self.rtp_devices = {}, {}
  self.conns, self.devices, self.servers = {}, {}, {}
end

return M

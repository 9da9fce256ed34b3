--- The media relay: devices stream to wxhw over the device framing on TCP
-- (docs/framing.md); each device's media goes through a pipeline
-- (wxhw.relay.pipeline: IDR gating while TALKING, G.711 → 16 kHz PCM in
-- 20 ms frames, jitter buffer) to the worker of the device's active call.
--
--   local r = relay.new{ calls = calls, supervisor = sup, jitter_ms = 60,
--                        authenticate = function(hello) return true end }
--   local port = r:listen("127.0.0.1", 0)
--   r:run{ seconds = 60 }         -- also drives the supervisor
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
local frame = require "wxhw.relay.frame"
local pipeline = require "wxhw.relay.pipeline"
local clock = require "wxhw.clock"

local M = { pipeline = pipeline, frame = frame, HELLO_MAX = 4096, HELLO_TIMEOUT = 5, MAX_PENDING = 64 }
local bind -- defined below
M.__index = M

function M.new(opts)
  opts = opts or {}
  return setmetatable({
    calls = opts.calls, sup = opts.supervisor, jitter_ms = opts.jitter_ms or 60,
    authenticate = opts.authenticate, lookup_every = opts.lookup_every or 0.2,
    hello_timeout = opts.hello_timeout or M.HELLO_TIMEOUT, max_pending = opts.max_pending or M.MAX_PENDING,
    devices = {}, conns = {}, servers = {},
    counters = { devices = 0, refused = 0, frames_in = 0, frames_out = 0, undeliverable = 0, closed_bad = 0 },
  }, M)
end

--- Listens for devices on TCP; returns the port.
function M:listen(host, port)
  local srv = assert(socket.bind(host or "127.0.0.1", port or 0))
  srv:settimeout(0)
  self.servers[#self.servers + 1] = srv
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
  local _, port = u:getsockname()
  return tonumber(port)
end

local function on_datagrams(self, u, now)
  local b = self.udp[u]
  for _ = 1, 256 do
    local pkt = u:receive(65536)
    if not pkt then break end
    self.counters.frames_in = self.counters.frames_in + 1
    bind(self, b.dev, now)
    if b.media == "h264" then b.dev.pipe:rtp_video(pkt, now) else b.dev.pipe:rtp_audio(pkt, now, b.media) end
  end
end

local function close_dev(self, c, bad)
  local d = self.conns[c]
  self.conns[c] = nil
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
end

local function deliver(self, now)
  local soonest
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
    if nd and (not soonest or nd < soonest) then soonest = nd end
  end
  return soonest
end

--- One turn: read devices, release due frames, drive the supervisor.
function M:step(max_wait)
  max_wait = max_wait or 0.02
  local now = clock.monotonic()
  local soonest = deliver(self, now)
  local wait = max_wait
  if soonest then wait = math.max(0, math.min(wait, soonest - now)) end
  local rd = {}
  for _, s in ipairs(self.servers) do rd[#rd + 1] = s end
  for c, d in pairs(self.conns) do
    if not d.sn and now - d.opened > self.hello_timeout then -- no hello in time
      self.counters.refused = self.counters.refused + 1
      close_dev(self, c, true)
    else
      rd[#rd + 1] = c
    end
  end
  for u in pairs(self.udp or {}) do rd[#rd + 1] = u end
  local readable = socket.select(rd, nil, wait)
  now = clock.monotonic()
  for _, c in ipairs(readable or {}) do
    local d = self.conns[c]
    if self.udp and self.udp[c] then
      on_datagrams(self, c, now)
    elseif d == nil then -- a listening socket
      local nc = c:accept()
      if nc then
        nc:settimeout(0)
        nc:setoption("tcp-nodelay", true)
        make_room(self)
        self.conns[nc] = { dec = frame.decoder(), pipe = pipeline.new{ jitter_ms = self.jitter_ms }, opened = now }
      end
    else
      local data, err, partial = c:receive(65536)
      data = data or partial
      if data and #data > 0 then
        local frames = d.dec:push(data)
        if not frames then close_dev(self, c, true) else on_records(self, c, d, frames, now) end
        if self.conns[c] and not d.sn and d.dec:pending() > frame.HDR + M.HELLO_MAX then -- not a hello
          self.counters.refused = self.counters.refused + 1
          close_dev(self, c, true)
        end
      end
      if err == "closed" and self.conns[c] then close_dev(self, c) end
    end
  end
  deliver(self, clock.monotonic())
  if self.sup then self.sup:step(0) end
end

function M:run(opts)
  opts = opts or {}
  local deadline = opts.seconds and clock.monotonic() + opts.seconds
  while true do
    self:step(opts.step or 0.005)
    if opts.until_fn and opts.until_fn() then return true end
    if deadline and clock.monotonic() >= deadline then return false end
  end
end

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
  for c in pairs(self.conns) do c:close() end
  for _, s in ipairs(self.servers) do s:close() end
  for u in pairs(self.udp or {}) do u:close() end
  self.udp, self.rtp_devices = {}, {}
  self.conns, self.devices, self.servers = {}, {}, {}
end

return M

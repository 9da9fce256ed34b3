--- Call worker supervision: one process per call (the cloud server SDK is a
-- singleton), connected back over a unix socket speaking the device framing
-- (wxhw.media.frame). Protocol in docs/call-worker.md.
--
--   local sup = supervisor.new{ calls = calls, command = { "bin/wxhw", "call-worker", "--simulate" },
--                               socket_path = "/run/wxhw/calls.sock", appid = "wx..." }
--   sup:run{ seconds = 10 }   or   repeat sup:step(0.05) until done
--   (opts.loop: a wxhw.loop shared with the relay and the HTTP server)
--
-- It implements the worker interface wxhw.call expects (start, hangup,
-- stop), reports the worker's status events to calls:worker_status(), and a
-- worker that dies or never connects to calls:worker_exited() (ABORTED).
-- Runs in a plain Lua process (luasocket); nginx workers only write sessions
-- and leave processes to this supervisor.
local unix = require "socket.unix"
local frame = require "wxhw.media.frame"
local loop = require "wxhw.loop"
local crypto = require "wxhw.crypto"
local clock = require "wxhw.clock"
local errors = require "wxhw.errors"
local machine = require "wxhw.call.machine"
local fileio = require "wxhw.fileio"

local proc = fileio.proc

local M = {}
M.__index = M
local accept, read, flush, housekeeping -- the loop's callbacks, below

-- Whether a process runs: a worker of ours that exited is reaped here
-- (proc.alive), and another process's zombie counts as gone.
local function alive(pid)
  if not proc.alive(math.floor(pid)) then return false end
  local f = io.open("/proc/" .. math.floor(pid) .. "/stat")
  if not f then return false end
  local st = f:read("*l") or ""
  f:close()
  return not st:match("^%d+ %b() [ZX]")
end
M.alive = alive

local function hostname()
  for _, f in ipairs{ "/proc/sys/kernel/hostname", "/etc/hostname" } do
    local h = io.open(f)
    local name = h and h:read("*l")
    if h then h:close() end
    if name and name ~= "" then return name end
  end
  return "localhost"
end

-- Liveness of each supervisor in the calls' store: "sup:<owner>" lives for
-- `heartbeat` seconds and is renewed three times in that span.
local function beat(self, now)
  if not self.heartbeat or not self.calls or now - self.last_beat < self.heartbeat / 3 then return end
  self.last_beat = now
  self.calls.store:set("sup:" .. self.owner, "1", self.heartbeat)
end

--- opts: calls, command (argv list), socket_path, appid, connect_timeout (5 s),
-- owner (who runs the workers, for recover(): "<hostname>:<socket_path>"),
-- stop_grace (2 s), socket_mode ("660": this user and its group, e.g. nginx's worker user's; "600" for this user only), log (file for workers' stdout/stderr, default /dev/null),
-- heartbeat (15 s: a call whose supervisor has not renewed its liveness key
-- for that long is ABORTED by the others; false = off),
-- max_backlog (bytes queued for a worker before media is dropped, 8 MiB),
-- backlog (listen backlog of the socket, 1024),
-- max_calls (workers this host runs at once; a call beyond is refused BUSY
-- by wxhw.call; default M.default_max_calls(), false = no limit),
-- env (extra environment), on_stats(room_id, stats), on_frame(room_id, frame).
function M.new(opts)
  if type(opts) ~= "table" or type(opts.command) ~= "table" or #opts.command == 0 then
    error("supervisor.new: command (argv list) required", 2)
  end
  local max_calls = opts.max_calls
  if max_calls == nil then max_calls = M.default_max_calls() end
  if max_calls ~= false and (type(max_calls) ~= "number" or max_calls < 1 or max_calls % 1 ~= 0) then
    error("supervisor.new: max_calls must be a whole number >= 1 or false", 2)
  end
  local path = opts.socket_path or os.tmpname() .. ".sock"
  os.remove(path)
  local srv = unix.stream()
  local ok, err = srv:bind(path)
  if not ok then return errors.fail("io", "cannot bind " .. path .. ": " .. tostring(err)) end
  -- room for a burst of workers starting at once; step() accepts them all
  srv:listen(opts.backlog or 1024)
  srv:settimeout(0)
  -- this user (workers) and its group (nginx workers, which run as another
  -- user: run the daemon with a group they share); never others
  local mok, merr = fileio.chmod(path, opts.socket_mode or "660")
  if not mok then srv:close(); os.remove(path); return nil, merr end
  local self = setmetatable({
    calls = opts.calls, command = opts.command, socket_path = path, server = srv, appid = opts.appid or "",
    connect_timeout = opts.connect_timeout or 5, max_backlog = opts.max_backlog or 8 * 1024 * 1024, stop_grace = opts.stop_grace or 2,
    log = opts.log or "/dev/null", env = opts.env or {}, on_stats = opts.on_stats, on_frame = opts.on_frame,
    workers = {}, by_token = {}, pending = {}, conns = {}, stats = {}, last_tick = 0, last_beat = -math.huge,
    children = {},
    heartbeat = opts.heartbeat == nil and 15 or opts.heartbeat, max_calls = max_calls,
    counters = { started = 0, exited = 0, crashed = 0, bad_status = 0, orphans = 0 },
    loop = opts.loop or loop.new(),
  }, M)
  self.on_read = function(c) read(self, c) end
  self.on_write = function(c) flush(self, c) end
  self.loop:register(srv, function() accept(self) end)
  self.housekeeper = self.loop:every(0.02, function() housekeeping(self) end)
  -- who runs a call's worker: this host's name and the socket path, stable
  -- across a restart; the path alone is the same on every host of a cluster,
  -- and a restart on one host aborted the calls the others were running
  self.owner = opts.owner or (hostname() .. ":" .. path)
  if opts.calls then
    opts.calls.worker = self
    beat(self, clock.monotonic())
    self.last_orphan_scan = clock.monotonic()
    -- calls this supervisor ran before a restart have lost their workers
    if opts.recover ~= false then self:recover() end
  end
  return self
end

function M:__tostring() return "wxhw.call.Supervisor(" .. self.socket_path .. ")" end

-- Calls per core to admit: bench/calls --no-limit carried 64 calls on 2
-- shared cores with 0.00 % late frames and 80 with 4.9 % (each call a
-- 640x480 H.264 15 fps + audio stream, its worker and its simulated device
-- on the same host; docs/calls.md, Figures); 3/4 of that edge leaves room
-- for the load of the rest of the host.
M.CALLS_PER_CORE = 24

-- The CPUs this process may run on (its affinity, as nproc(1) counts them:
-- a container's cpuset or a taskset), else those online.
local function cores()
  local f = io.open("/proc/self/status")
  local status = f and f:read("*a") or ""
  if f then f:close() end
  local list, n = status:match("Cpus_allowed_list:%s*([%d,%-]+)"), 0
  for a, b in (list or ""):gmatch("(%d+)%-?(%d*)") do
    n = n + (b ~= "" and tonumber(b) - tonumber(a) + 1 or 1)
  end
  return n >= 1 and n or proc.nproc()
end

--- The default max_calls: CALLS_PER_CORE for each core this process may use.
function M.default_max_calls() return M.CALLS_PER_CORE * cores() end

--- worker interface: true when the host runs all the calls it may (max_calls
-- workers, ending ones included: they hold their process until they exit).
function M:full()
  return self.max_calls ~= false and self:count() >= self.max_calls
end

-- The worker, started without a shell: it keeps none of our descriptors
-- (an HTTP client would wait for a close that never comes), appends to the
-- log, and ignores a Ctrl-C meant for us (as `cmd &` did). It is our child:
-- housekeeping reaps it once it has exited.
local function spawn(self, w)
  local env = { WXHW_CALL_SOCKET = self.socket_path, WXHW_CALL_ROOM = w.room_id, WXHW_CALL_TOKEN = w.token }
  for k, v in pairs(self.env) do env[k] = tostring(v) end
  local pid, err = proc.spawn(self.command, { env = env, stdin = "null", stdout = self.log, append = true,
                                             stderr = "stdout", background = true, close_fds = true })
  if pid then self.children[pid] = true end
  return pid, err
end

-- Children that have exited are waited for (no zombies).
local function reap(self)
  for pid in pairs(self.children) do
    if proc.wait(pid, true) ~= false then self.children[pid] = nil end
  end
end

--- worker interface: start a process for the session.
function M:start(s)
  -- asked again for a call whose worker runs (a gateway that died after
  -- asking, and whose setup the push's retransmission took over): one worker
  if self.workers[s.room_id] then return true end
  if self:full() then
    return errors.fail("busy", "call capacity reached (" .. self.max_calls .. " calls on this host)")
  end
  local w = { room_id = s.room_id, token = crypto.nonce(32), session = s, started_at = clock.monotonic(),
              out = "", dec = frame.decoder(), seq = 0 }
  local pid, err = spawn(self, w)
  if not pid then return errors.fail("io", "could not start the call worker: " .. tostring(err and err.message or err)) end
  w.pid = pid
  self.workers[s.room_id] = w
  self.by_token[w.token] = w
  self.counters.started = self.counters.started + 1
  -- who runs the worker, so a restarted supervisor can clean up after itself
  if self.calls and self.calls.update then self.calls:update(s.room_id, { worker_owner = self.owner, worker_pid = w.pid }) end
  return true
end

-- Bytes for the worker; sent when its connection is writable (the loop
-- watches for that only while bytes wait).
local function queue(self, w, bytes)
  w.out = w.out .. bytes
  if w.conn and not w.writing then
    w.writing = true
    self.loop:register(w.conn, self.on_read, self.on_write)
  end
end

local function control(self, w, msg)
  w.seq = (w.seq + 1) % 65536
  queue(self, w, frame.control(msg, w.seq))
end

--- worker interface: ask the worker to hang up (reason: SDK number).
function M:hangup(s, reason)
  local w = self.workers[s.room_id]
  if w then control(self, w, { op = "hangup", reason = reason or 0 }) end
end

--- worker interface: the call ended; the worker finishes and exits.
function M:stop(s)
  local w = self.workers[s.room_id]
  if w and not w.stopping then
    w.stopping, w.kill_at = true, clock.monotonic() + self.stop_grace
    control(self, w, { op = "stop", state = s.state })
  end
end

--- Media to the worker of a call: raw frame bytes (wxhw.media.frame.encode).
-- Returns false when the call has no connected worker.
function M:send(room_id, bytes)
  local w = self.workers[room_id]
  if not w or not w.conn or w.stopping then return false end
  -- a worker that stops reading must not grow our memory without bound
  if #w.out > self.max_backlog then
    self.counters.backlog_drops = (self.counters.backlog_drops or 0) + 1
    return false
  end
  queue(self, w, bytes)
  return true
end

function M:worker(room_id) return self.workers[room_id] end

-- a worker already gone is no error here
local function kill(pid) proc.kill(math.floor(pid), "KILL") end

-- Closes a connection, identified or not.
local function close_conn(self, c)
  self.loop:unregister(c)
  c:close()
  self.conns[c], self.pending[c] = nil, nil
end

local function forget(self, w, why)
  if w.conn then close_conn(self, w.conn) end
  self.workers[w.room_id] = nil
  self.by_token[w.token] = nil
  self.counters.exited = self.counters.exited + 1
  if w.pid and alive(w.pid) then kill(w.pid) end
  if self.calls and not w.stopping then
    self.counters.crashed = self.counters.crashed + 1
    self.calls:worker_exited(w.room_id, why)
  end
end

local function handle_control(self, w, msg)
  if msg.op == "status" then
    if self.calls then
      local _, err = self.calls:worker_status(w.room_id, msg.status, msg.reason)
      if err then self.counters.bad_status = self.counters.bad_status + 1 end
    end
  elseif msg.op == "stats" then
    w.stats = msg
    self.stats[w.room_id] = msg
    if self.on_stats then pcall(self.on_stats, w.room_id, msg) end
  end
end

local function on_conn_data(self, c, data)
  local w = self.conns[c]
  if type(w) ~= "table" then -- not identified yet: first frame must be hello (or rpc)
    local d = self.pending[c] or frame.decoder(65536)
    self.pending[c] = nil
    local frames = d:push(data)
    if not frames then close_conn(self, c); return end
    if #frames == 0 then self.pending[c] = d; return end
    local hello = frame.decode_control(frames[1])
    if hello and hello.op == "rpc" then
      local reply = self:rpc(hello)
      c:settimeout(1)
      c:send(frame.control(reply))
      close_conn(self, c)
      return
    end
    local cand = hello and hello.op == "hello" and type(hello.token) == "string" and self.by_token[hello.token]
    if not cand or cand.conn or hello.room_id ~= cand.room_id then close_conn(self, c); return end
    cand.conn, cand.dec = c, d
    self.conns[c] = cand
    local s = cand.session
    control(self, cand, { op = "join", room_id = s.room_id, session_key = s.session_key, server_token = s.server_token,
                    payload = s.payload, model_id = s.model_id, sn = s.sn, direction = s.direction,
                    room_type = s.room_type, appid = self.appid, time_limit = s.time_limit })
    for i = 2, #frames do
      local m = frame.decode_control(frames[i])
      if m then handle_control(self, cand, m) end
    end
    return
  end
  local frames = w.dec:push(data)
  if not frames then forget(self, w, "worker sent a malformed frame"); return end
  for _, fr in ipairs(frames) do
    local m = frame.decode_control(fr)
    if m then handle_control(self, w, m)
    elseif self.on_frame then pcall(self.on_frame, w.room_id, fr) end
  end
end

-- Sends what waits for the worker on connection c.
function flush(self, c)
  local w = self.conns[c]
  if type(w) ~= "table" then return end
  local n, err, last = c:send(w.out)
  local sent = n or last or 0
  if sent > 0 then w.out = w.out:sub(sent + 1) end
  if err == "closed" then forget(self, w, "worker connection closed")
  elseif #w.out == 0 then
    w.writing = false
    self.loop:register(c, self.on_read, nil)
  end
end

-- A call another gateway ended (a hang-up through nginx, the emulator's
-- cancel at a second daemon) never reached our stop(): its worker would run
-- on. The stored session is the truth; a worker whose call is stored as ended
-- is told to hang up and stopped. A read error or a missing session changes
-- nothing (a store outage must not end live calls).
local function reap_ended(self)
  for room, w in pairs(self.workers) do
    if not w.stopping then
      local s = self.calls:get(room)
      if s and machine.is_final(s.state) then
        control(self, w, { op = "hangup", reason = machine.reasons[s.reason or "UNKNOWN"] or 0 })
        self:stop(s)
      end
    end
  end
end

-- A host that died for good (no restart, so no recover()) leaves its calls
-- active, a talking call without a time limit for ever, its device busy.
-- Another supervisor whose heartbeat the store no longer holds is gone: its
-- calls are ABORTED (the abort is a compare-and-set; one supervisor wins).
local function reap_orphans(self, now)
  if not self.heartbeat or now - self.last_orphan_scan < self.heartbeat / 3 then return end
  self.last_orphan_scan = now
  for _, s in ipairs(self.calls:active() or {}) do
    local o = s.worker_owner
    if type(o) == "string" and o ~= self.owner then
      local v, err = self.calls.store:get("sup:" .. o)
      if v == nil and err == nil then
        self.calls:worker_exited(s.room_id, "supervisor " .. o .. " stopped (no heartbeat)")
        self.counters.orphans = self.counters.orphans + 1
      end
    end
  end
end

-- unidentified until its hello (or rpc): the value is when it came
function accept(self)
  repeat
    local nc = self.server:accept()
    if nc then
      nc:settimeout(0)
      self.conns[nc] = clock.monotonic()
      self.loop:register(nc, self.on_read)
    end
  until not nc
end

function read(self, c)
  local data, err, partial = c:receive(65536)
  data = data or partial
  if data and #data > 0 then on_conn_data(self, c, data) end
  if err == "closed" and self.conns[c] then
    local w = self.conns[c]
    if type(w) == "table" then forget(self, w, "worker exited") else close_conn(self, c) end
  end
end

-- Deadlines of connections and workers, and the calls' clock.
function housekeeping(self)
  local now = clock.monotonic()
  -- a connection that never identifies itself must not hold an fd for ever
  for c, v in pairs(self.conns) do
    if type(v) == "number" and now - v > self.connect_timeout then close_conn(self, c) end
  end
  for _, w in pairs(self.workers) do
    if w.stopping and now >= w.kill_at then
      forget(self, w, "worker did not exit after stop")
    elseif not w.conn and now - w.started_at > self.connect_timeout then
      forget(self, w, "worker did not connect within " .. self.connect_timeout .. " s")
    elseif not w.conn and w.pid and not alive(w.pid) then
      forget(self, w, "worker exited before connecting")
    end
  end
  reap(self)
  if self.calls and now - self.last_tick >= 0.25 then
    self.last_tick = now
    self.calls:tick()
    reap_ended(self)
    beat(self, now)
    reap_orphans(self, now)
  end
end

--- One turn of the loop (of everything on it): accept, read, write,
-- supervise, tick the calls.
function M:step(timeout) self.loop:step(timeout or 0.05) end

-- Calls made by gateways that cannot run processes themselves (nginx
-- workers, through wxhw.call.remote): {"op":"rpc","method":...,"args":[...]}.
local RPC = { join_voip_room = true, hangup = true, get = true, prepare_device_call = true,
              prepare_phone_call = true }

function M:rpc(req)
  if not self.calls then return { op = "result", ok = false, error = "no calls configured" } end
  if not RPC[req.method] then return { op = "result", ok = false, error = "unknown method" } end
  local args = type(req.args) == "table" and req.args or {}
  local ok, res, err = pcall(self.calls[req.method], self.calls, args[1], args[2], args[3])
  if not ok then return { op = "result", ok = false, error = "call failed" } end
  if res == nil and err then return { op = "result", ok = false, error = tostring(err.message or err) } end
  if type(res) == "table" and getmetatable(res) == require("wxhw.call").Session then
    res = require("wxhw.call").public(res)
    setmetatable(res, nil)
  end
  return { op = "result", ok = true, result = res }
end

--- Aborts the active calls whose worker this supervisor (same owner:
-- host name and socket path by default) started before it restarted; kills
-- leftovers.
function M:recover()
  local list = self.calls:active() or {}
  local n = 0
  for _, s in ipairs(list) do
    if s.worker_owner == self.owner and not self.workers[s.room_id] then
      -- a pid can be reused: only kill a process that is this call's worker
      local f = s.worker_pid and io.open("/proc/" .. math.floor(s.worker_pid) .. "/environ", "rb")
      if f then
        local env = f:read("*a") or ""
        f:close()
        if env:find("\0WXHW_CALL_ROOM=" .. s.room_id .. "\0", 1, true) or env:find("^WXHW_CALL_ROOM=" .. s.room_id:gsub("%p", "%%%0") .. "%z") then
          kill(s.worker_pid)
        end
      end
      self.calls:worker_exited(s.room_id, "supervisor restarted; worker lost")
      n = n + 1
    end
  end
  self.counters.recovered = n
  return n
end

--- Runs the loop: opts.seconds, or opts.until_fn() returning true to stop.
function M:run(opts) return self.loop:run(opts, 0.02) end

function M:count()
  local n = 0
  for _ in pairs(self.workers) do n = n + 1 end
  return n
end

--- Kills every worker and closes the socket.
function M:close()
  for _, w in pairs(self.workers) do
    w.stopping = true
    if w.pid and alive(w.pid) then kill(w.pid) end
  end
  -- killed, a worker is gone at once: waited for (a second at most), it
  -- leaves no zombie
  local until_t = clock.monotonic() + 1
  repeat reap(self); if next(self.children) then clock.sleep_blocking(0.005) end
  until not next(self.children) or clock.monotonic() > until_t
  for c in pairs(self.conns) do close_conn(self, c) end
  self.workers, self.conns = {}, {}
  self.loop:cancel(self.housekeeper)
  self.loop:unregister(self.server)
  self.server:close()
  os.remove(self.socket_path)
end

return M

--- One select() reactor for the Lua servers of a process (luasocket): the
-- HTTP server, the call supervisor and the media relay register their
-- sockets and timers on one loop, and one `run` drives them all.
--
--   local loop = require("wxhw.loop").new()
--   loop:register(sock, on_read, on_write)  -- on_read(sock) / on_write(sock), nil = not interested
--   loop:register(sock, on_read, nil)       -- again: changes the interest (e.g. output drained)
--   loop:unregister(sock)
--   local t = loop:after(0.5, fn)           -- once; loop:every(0.02, fn) repeats; loop:cancel(t)
--   loop:step(0.05)                         -- one turn: due timers, select() up to 0.05 s, I/O, timers
--   loop:run{ seconds = 10, until_fn = function() return done end }
--
-- Write interest is asked for only while output waits: a writable socket
-- in the set would make select() return at once, every turn. The wait of a
-- turn ends at the next timer, so a timer is how a module says "wake me".
-- Callbacks run one at a time; an error in one propagates out of step() (as
-- the private loops this replaced did). Not for nginx: cosockets there.
local socket = require "socket"
local clock = require "wxhw.clock"

local monotonic, select = clock.monotonic, socket.select
local huge, max, min = math.huge, math.max, math.min

local M = {}
local Loop = {}
Loop.__index = Loop
M.Loop = Loop

function M.new()
  return setmetatable({
    readers = {}, writers = {}, -- arrays handed to select()
    on_read = {}, on_write = {}, -- sock -> callback
    at_read = {}, at_write = {}, -- sock -> index in readers / writers
    timers = {},                 -- sorted by .at
  }, Loop)
end

-- Adds or removes sock in one of the two select() sets (swap-remove: O(1)).
local function set(list, index, sock, on)
  local i = index[sock]
  if on and not i then
    list[#list + 1] = sock
    index[sock] = #list
  elseif not on and i then
    local n = #list
    local last = list[n]
    list[i], index[last] = last, i
    list[n], index[sock] = nil, nil
  end
end

--- Watches sock: on_read(sock) when it is readable (or a listener has a
-- connection), on_write(sock) when it is writable. Either may be nil; call
-- again to change them.
function Loop:register(sock, on_read, on_write)
  self.on_read[sock], self.on_write[sock] = on_read, on_write
  set(self.readers, self.at_read, sock, on_read ~= nil)
  set(self.writers, self.at_write, sock, on_write ~= nil)
end

--- Stops watching sock (call it before closing the socket).
function Loop:unregister(sock)
  self:register(sock, nil, nil)
end

--- Whether sock is watched.
function Loop:registered(sock)
  return self.on_read[sock] ~= nil or self.on_write[sock] ~= nil
end

local function schedule(self, t)
  local timers = self.timers
  local i = #timers
  while i > 0 and timers[i].at > t.at do timers[i + 1] = timers[i]; i = i - 1 end
  timers[i + 1] = t
  return t
end

--- fn() once, `delay` seconds from now. Returns the timer (for cancel).
function Loop:after(delay, fn)
  return schedule(self, { at = monotonic() + delay, fn = fn })
end

--- fn() every `interval` seconds (the next run counted from the end of this
-- one: a late turn does not bring a burst).
function Loop:every(interval, fn)
  return schedule(self, { at = monotonic() + interval, fn = fn, interval = interval })
end

function Loop:cancel(t)
  if not t then return end
  t.cancelled = true
  local timers = self.timers
  for i = 1, #timers do
    if timers[i] == t then table.remove(timers, i); return end
  end
end

local function run_timers(self)
  local timers = self.timers
  local now = monotonic()
  while timers[1] and timers[1].at <= now do
    local t = table.remove(timers, 1)
    t.fn()
    if t.interval and not t.cancelled then
      t.at = monotonic() + t.interval
      schedule(self, t)
    end
  end
end

--- Seconds until the next timer (math.huge without one).
function Loop:next_timer()
  local t = self.timers[1]
  return t and max(0, t.at - monotonic()) or huge
end

--- One turn: due timers, a select() of at most `timeout` seconds (0.05; less
-- when a timer is due sooner), the callbacks of the ready sockets, due timers.
function Loop:step(timeout)
  run_timers(self)
  local wait = min(timeout or 0.05, self:next_timer())
  local readable, writable = select(self.readers, self.writers, wait)
  local on_read, on_write = self.on_read, self.on_write
  for i = 1, #(readable or {}) do
    local s = readable[i]
    local fn = on_read[s] -- nil once an earlier callback unregistered it
    if fn then fn(s) end
  end
  for i = 1, #(writable or {}) do
    local s = writable[i]
    local fn = on_write[s]
    if fn then fn(s) end
  end
  run_timers(self)
end

--- Turns until opts.until_fn() returns true (then true) or opts.seconds have
-- passed (then false); neither: for ever. opts.step bounds one turn's wait
-- (else `turn`, else 0.05 s), which is how often until_fn is asked when
-- nothing happens.
function Loop:run(opts, turn)
  opts = opts or {}
  local until_fn = opts.until_fn
  turn = opts.step or turn or 0.05
  local deadline = opts.seconds and monotonic() + opts.seconds
  while true do
    self:step(deadline and min(turn, max(0, deadline - monotonic())) or turn)
    if until_fn and until_fn() then return true end
    if deadline and monotonic() >= deadline then return false end
  end
end

function Loop:__tostring()
  return ("wxhw.Loop(%d sockets, %d timers)"):format(#self.readers, #self.timers)
end

return M

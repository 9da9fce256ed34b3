--- Owner ids for leases held in shared stores: which process on which host
-- holds a claim, and whether that process is gone.
--
--   owner.id()       --> "<boot id>/<pid>/<start time>" of this process
--   owner.gone(id)   --> true when id names a process of this host (same
--                        boot) that no longer runs; false when it runs, or
--                        is on another host, or id is not an owner id
--
-- The start time (clock ticks since boot, /proc/<pid>/stat field 22) tells a
-- process from a later one given the same pid. Without /proc (not Linux) ids
-- carry no boot id and nothing is ever known to be gone: leases then end by
-- expiry alone.
local M = {}

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- State and start time of a process, nil when it does not exist.
local function stat(pid)
  local s = read("/proc/" .. pid .. "/stat")
  -- the name is in parentheses and may hold anything: fields follow the last ')'
  local rest = s and s:match("^%d+ %(.*%) (.*)$")
  if not rest then return nil end
  local i, state = 0, nil
  for f in rest:gmatch("%S+") do
    i = i + 1
    if i == 1 then state = f end
    if i == 20 then return state, f end -- field 22 of stat, the 20th after the name
  end
  return nil
end

--- The start time of process `pid` (a string of digits), nil when none runs.
function M._start_time(pid)
  local _, start = stat(pid)
  return start
end

local boot = (read("/proc/sys/kernel/random/boot_id") or ""):match("^[%x%-]+") or "nohost"

local getpid = require("wxhw.clock").pid

local cached_pid, cached_id
function M.id()
  local pid = getpid()
  if pid ~= cached_pid then -- first call, or a forked child
    local _, start = stat(pid)
    cached_pid, cached_id = pid, boot .. "/" .. pid .. "/" .. (start or "0")
  end
  return cached_id
end

function M.gone(id)
  if type(id) ~= "string" or boot == "nohost" then return false end
  local b, pid, start = id:match("^([%x%-]+)/(%d+)/(%d+)$")
  if b ~= boot then return false end
  if tonumber(pid) == getpid() then return false end
  local state, started = stat(pid)
  -- a zombie (Z) or dead (X) process has run its course; it only waits to be reaped
  return state == nil or state == "Z" or state == "X" or (start ~= "0" and started ~= start)
end

return M

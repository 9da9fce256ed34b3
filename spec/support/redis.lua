--- Start a throwaway redis-server on a free loopback port for a spec: no
-- persistence, no config file, stopped by pid. Runs under Lua 5.4 and LuaJIT.
--
--   local redis = require "support.redis"
--   local r = redis.start()          -- r.host, r.port, r.pid
--   r.cli("FLUSHALL")                -- redis-cli output (string)
--   r.stop()                         -- kill by pid, wait until gone
--   r.restart()                      -- same port, empty data (store outage tests)
--
-- A watchdog kills the server when the spawning Lua process is gone, so a
-- crashed spec run leaves nothing behind.
local socket = require "socket"

local M = {}

local function self_pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local s = f:read("*l"); f:close()
  return tonumber(s:match("^(%d+)"))
end

local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local st = f:read("*l") or ""; f:close()
  return not st:match("^%d+ %b() Z")
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function cli(port, ...)
  local args = { "redis-cli", "-h", "127.0.0.1", "-p", tostring(port) }
  for _, a in ipairs{ ... } do args[#args + 1] = "'" .. tostring(a):gsub("'", "'\\''") .. "'" end
  local p = io.popen(table.concat(args, " ") .. " 2>&1")
  local out = p:read("*a"); p:close()
  return (out:gsub("%s+$", ""))
end

local function spawn(port)
  local cmd = string.format("redis-server --bind 127.0.0.1 --port %d --save '' --appendonly no "
    .. "--protected-mode yes --daemonize no --loglevel warning --logfile ''", port)
  -- The server in the background, its pid first, then a watchdog that stops
  -- it when the parent Lua process exits.
  local parent = self_pid()
  local p = io.popen(string.format("(%s >/dev/null 2>&1 & rp=$!; echo $rp; "
    .. "(while kill -0 %d 2>/dev/null && kill -0 $rp 2>/dev/null; do sleep 1; done; kill $rp 2>/dev/null) "
    .. ">/dev/null 2>&1 &)", cmd, parent))
  local pid = tonumber(p:read("*l"))
  p:close()
  return pid
end

local function wait_ready(port, pid)
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    -- the answer must come from our server, not another spec's on a reused port
    local served_by = tonumber(cli(port, "INFO", "server"):match("process_id:(%d+)"))
    if served_by == pid then return true end
    if served_by or not alive(pid) then return false end
    socket.sleep(0.02)
  end
  return false
end

--- Returns a handle with host, port, pid, cli(...), stop(), restart().
function M.start()
  local r = { host = "127.0.0.1" }
  for _ = 1, 5 do
    r.port = free_port()
    r.pid = spawn(r.port)
    if r.pid and wait_ready(r.port, r.pid) then break end
    if r.pid then os.execute("kill " .. r.pid .. " 2>/dev/null") end
    r.pid = nil
  end
  if not r.pid then error("redis-server did not start", 2) end

  function r.cli(...) return cli(r.port, ...) end

  function r.stop()
    if not r.pid then return end
    os.execute("kill " .. r.pid .. " 2>/dev/null")
    for _ = 1, 250 do
      if not alive(r.pid) then break end
      socket.sleep(0.02)
    end
    r.pid = nil
  end

  function r.restart()
    r.stop()
    r.pid = spawn(r.port)
    if not wait_ready(r.port, r.pid) then error("redis-server did not restart on port " .. r.port, 2) end
  end

  return r
end

return M

--- OS processes for the token specs: run a Lua chunk in a fresh interpreter
-- of the current runtime (lua5.4 or luajit) and learn its pid.
--
--   local procs = require "support.token_procs"
--   local p = procs.spawn(code, arg1, arg2)   -- p.pid
--   p.line()                                  -- next line of its output
--   local out = p.wait()                      -- the rest of stdout+stderr
--   p.kill()                                  -- SIGKILL
--   procs.wait_bounded(p, secs)               -- p.wait(), killing it after secs (a wedged lock)
local M = {}

M.lua = os.getenv("WXHW_RUNTIME") == "luajit" and "luajit" or "lua5.4"

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.spawn(code, ...)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local args = {}
  for i, a in ipairs{ ... } do args[i] = quote(a) end
  local h = io.popen("echo $$; exec " .. M.lua .. " " .. quote(path) .. " " .. table.concat(args, " ") .. " 2>&1")
  local p = { pid = tonumber(h:read("*l")) }
  function p.wait()
    if p.out then return p.out end
    p.out = h:read("*a")
    h:close()
    os.remove(path)
    return p.out
  end
  function p.line() return h:read("*l") end
  function p.kill() os.execute("kill -9 " .. p.pid .. " 2>/dev/null") end
  return p
end

--- Waits for a child at most `secs`, killing it when it hangs.
function M.wait_bounded(p, secs)
  for _ = 1, secs * 50 do
    local f = io.open("/proc/" .. p.pid .. "/stat")
    local st = f and f:read("*l") or ""
    if f then f:close() end
    if st == "" or st:match("^%d+ %b() Z") then return p.wait() end
    require("socket").sleep(0.02)
  end
  -- what it was doing, for the failure message: R is a loop, S a wait
  local function proc(name)
    local f = io.open("/proc/" .. p.pid .. "/" .. name)
    local v = f and f:read("*l") or "?"
    if f then f:close() end
    return v
  end
  local state = ("stat: %s; wchan: %s; syscall: %s"):format(proc("stat"), proc("wchan"), proc("syscall"))
  p.kill()
  return p.wait() .. "\nKILLED: hung (" .. state .. ")"
end

return M

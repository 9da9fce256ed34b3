--- The one environment seam: where we run, and its clocks.
--
--   clock.in_nginx()   true inside an OpenResty worker (ngx.socket present)
--   clock.now()        wall seconds, fractional, read now (csrc/clock.c)
--   clock.time()       wall seconds, whole: ngx.time in nginx (its cached
--                      clock, an FFI call LuaJIT compiles into a trace, where
--                      os.time ends it), else os.time
--   clock.monotonic()  seconds for intervals, never steps back
--   clock.sleep(s)     ngx.sleep where a worker can yield (never blocks it);
--                      elsewhere a blocking nanosleep (csrc/clock.c)
--   clock.pid()        this process's id (nginx's cached one in a worker)
--   clock.ngx(), clock.shared_dict(name)   nginx's table and dicts (nil outside)
--
-- Modules ask here instead of probing `ngx` themselves, so the answer and
-- the defaults are written once. The probe runs at load: a module loaded in
-- nginx's init phase still sees ngx.
local core = require("wxhw.core").clock

local M = {}

local ngx_ = rawget(_G, "ngx")
local IN_NGINX = type(ngx_) == "table" and type(ngx_.socket) == "table"

function M.in_nginx() return IN_NGINX end

--- The `ngx` table inside nginx, nil elsewhere (for the few callers that
-- need an nginx-only API: shared dicts, timers, worker ids).
function M.ngx() return IN_NGINX and ngx_ or nil end

--- The lua_shared_dict `name` inside nginx; nil elsewhere or when nginx.conf
-- declares none by that name.
function M.shared_dict(name) return IN_NGINX and ngx_.shared[name] or nil end

M.monotonic = core.monotonic
M.now = core.now

-- Under LuaJIT the monotonic clock is read through the FFI: the call compiles
-- into the caller's trace, where a C function (the core's) makes LuaJIT stop
-- and stitch the trace around it (the push path reads it twice per push
-- with metrics on). Same clock (CLOCK_MONOTONIC), same seconds.
if rawget(_G, "jit") then
  local ok, ffi = pcall(require, "ffi")
  if ok and ffi.os == "Linux" then
    pcall(ffi.cdef, "struct wxhw_timespec { long tv_sec; long tv_nsec; };" ..
                    "int clock_gettime(int clk_id, struct wxhw_timespec *tp);")
    local ts = ffi.new("struct wxhw_timespec")
    local C, CLOCK_MONOTONIC = ffi.C, 1
    local works, rc = pcall(C.clock_gettime, CLOCK_MONOTONIC, ts)
    if works and rc == 0 then
      M.monotonic = function()
        C.clock_gettime(CLOCK_MONOTONIC, ts)
        return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
      end
    end
  end
end
M.time = IN_NGINX and ngx_.time or os.time

-- ngx.sleep raises in phases that cannot yield (init, header_filter...):
-- there the blocking sleep is the only one there is.
local csleep = core.sleep
if IN_NGINX then
  local nsleep = ngx_.sleep
  M.sleep = function(s)
    if pcall(nsleep, s) then return end
    csleep(s)
  end
else
  M.sleep = csleep
end

--- The blocking sleep, whatever the environment (tools and tests).
M.sleep_blocking = csleep

--- This process's pid: nginx's cached one inside a worker, else getpid()
-- (a forked child sees its own).
M.pid = IN_NGINX and ngx_.worker and ngx_.worker.pid or require("wxhw.core").proc.pid

return M

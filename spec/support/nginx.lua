--- Starts Debian's nginx (nginx-light + libnginx-mod-http-lua) on free loopback
-- ports with a generated config, for specs and benches.
--
--   local nginx = require "support.nginx"
--   local srv = assert(nginx.start{
--     server_block = [[ location = /hi { return 200 "hi"; } ]],
--     http_block = "lua_shared_dict counters 1m;",   -- optional
--     main_block = "env HOME;",                     -- optional, top level
--     workers = 1,                                  -- default 1
--     reuseport = true,                             -- one listening socket per worker (kernel spreads connections)
--     user = "nobody root",                         -- workers' user and group (as root; default root root)
--     lua_package_path = "/x/?.lua",                -- prepended to the defaults
--     lua_package_cpath = "/x/?.so",                -- prepended to the defaults
--     tls = { cert = "server.pem", key = "server.key", http2 = false }, -- also listen with TLS
--   })
--   srv.port, srv.base_url, srv.ssl_port, srv.https_url, srv.pid, srv.prefix
--   srv:error_log()  -- the error log so far (for failure messages)
--   srv:stop()       -- by pid; idempotent; also runs when the Lua state closes
--                       (srv.stop() without the colon works too)
--
-- The defaults put the repo's lua/, spec/ and build/luajit/ (wxhw.core) and
-- Debian's lua-resty-core and cjson on the package paths, so `require "wxhw"`
-- works inside the server.
local socket = require "socket"

local M = {}

local MODULES = "/usr/lib/nginx/modules/"

local function repo_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/spec/support/[^/]+$")
  if not dir or dir == "" then dir = "." end
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    local cwd = p:read("*l")
    p:close()
    dir = (dir == "." and cwd) or (cwd .. "/" .. dir)
  end
  return dir
end
M.repo = repo_root()

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then return ok == 0 end -- Lua 5.1 / LuaJIT without 5.2 compat
  return ok == true and how == "exit" and code == 0
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- A loopback port that was free a moment ago.
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Sockets behind dead_port(), held for the life of the Lua state.
local held = {}

--- A loopback port where connects are refused, and stay refused: a socket
-- is bound to it without listen() and held while this Lua state lives, so no
-- other server can take it (a merely "free" port can be bound meanwhile).
function M.dead_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  held[#held + 1] = s
  return tonumber(port)
end

local function port_open(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

local function alive(pid)
  return pid and sh("kill -0 " .. pid .. " 2>/dev/null")
end

local live = require("support.reaper").new() -- servers to stop when the Lua state closes
M._live = live

local Server = {}
Server.__index = Server

function Server:__tostring()
  return ("nginx pid %s on %s"):format(tostring(self.pid), self.base_url)
end

function Server:error_log()
  return read_file(self.prefix .. "/error.log") or ""
end

-- A process's start time (clock ticks since boot), to tell it from a later
-- process given the same pid.
local function started(pid)
  local rest = (read_file("/proc/" .. pid .. "/stat") or ""):match("^%d+ %b() (.*)$")
  local i = 0
  for f in (rest or ""):gmatch("%S+") do
    i = i + 1
    if i == 20 then return f end -- field 22 of stat, the 20th after the name
  end
end

-- The master's worker processes (its children) with their start times.
local function workers_of(pid)
  local list = {}
  local s = read_file(("/proc/%d/task/%d/children"):format(pid, pid)) or ""
  for w in s:gmatch("%d+") do list[tonumber(w)] = started(w) end
  return list
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  live[self] = nil
  local pid = self.pid
  if alive(pid) then
    local workers = workers_of(pid)
    sh("kill -QUIT " .. pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not alive(pid) then break end
      socket.sleep(0.05)
    end
    if alive(pid) then
      sh("kill -KILL " .. pid .. " 2>/dev/null")
      socket.sleep(0.05)
    end
    -- A worker busy in Lua (a loop in a timer) never finishes a graceful
    -- stop and outlives a killed master: left alone it would spin through
    -- the rest of the run and slow every later spec.
    for w, t in pairs(workers) do
      if started(w) == t then sh("kill -KILL " .. w .. " 2>/dev/null") end
    end
  end
  if not os.getenv("WXHW_KEEP_NGINX") then sh("rm -rf '" .. self.prefix .. "'") end
end

local function is_root()
  local p = io.popen("id -u")
  local uid = p:read("*l")
  p:close()
  return uid == "0"
end

local function render(o, prefix, port, ssl_port)
  local root = M.repo
  local path = (o.lua_package_path and (o.lua_package_path .. ";") or "")
    .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;"
    .. "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;"
  local cpath = (o.lua_package_cpath and (o.lua_package_cpath .. ";") or "")
    .. root .. "/build/luajit/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;"
  local tls = ""
  if ssl_port then
    tls = ("listen 127.0.0.1:%d ssl%s;\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n")
      :format(ssl_port, o.tls.http2 and " http2" or "", o.tls.cert, o.tls.key)
  end
  local t = {}
  local function add(s) t[#t + 1] = s end
  add("daemon on;\nmaster_process on;\n")
  add(("worker_processes %d;\npid %s/nginx.pid;\nerror_log %s/error.log %s;\n")
    :format(o.workers or 1, prefix, prefix, o.log_level or "warn"))
  if o.user then add("user " .. o.user .. ";\n") elseif is_root() then add("user root root;\n") end
  add("load_module " .. MODULES .. "ndk_http_module.so;\n")
  add("load_module " .. MODULES .. "ngx_http_lua_module.so;\n")
  add(o.main_block or "")
  add("\nevents { worker_connections 4096; }\n")
  add("http {\n  access_log off;\n  default_type text/plain;\n")
  for _, d in ipairs { "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
    add(("  %s_temp_path %s/tmp/%s;\n"):format(d, prefix, d))
  end
  add(('  lua_package_path "%s";\n  lua_package_cpath "%s";\n'):format(path, cpath))
  add("  keepalive_requests 100000;\n")
  add(o.http_block or "")
  add(("\n  server {\n    listen 127.0.0.1:%d%s;\n    %s"):format(port, o.reuseport and " reuseport" or "", tls))
  add(o.server_block or "")
  add("\n  }\n}\n")
  return table.concat(t)
end

--- Starts a server; returns it, or nil and a message with nginx's own words.
function M.start(o)
  o = o or {}
  if o.tls and not (o.tls.cert and o.tls.key) then error("nginx.start: tls needs cert and key", 2) end
  local p = io.popen("mktemp -d /tmp/wxhw-nginx.XXXXXX")
  local prefix = p:read("*l")
  p:close()
  assert(prefix and prefix ~= "", "mktemp failed")
  sh("mkdir -p '" .. prefix .. "/tmp'")
  local last
  for _ = 1, 5 do -- a port can be taken between free_port() and bind()
    local port = M.free_port()
    local ssl_port = o.tls and M.free_port() or nil
    local conf = render(o, prefix, port, ssl_port)
    write_file(prefix .. "/nginx.conf", conf)
    os.remove(prefix .. "/nginx.pid")
    local launched = sh(("nginx -p '%s' -c '%s/nginx.conf' -e '%s/error.log' >'%s/start.out' 2>&1")
      :format(prefix, prefix, prefix, prefix))
    local pid
    for _ = 1, 100 do
      pid = tonumber((read_file(prefix .. "/nginx.pid") or ""):match("%d+"))
      if pid or not launched then break end
      socket.sleep(0.02)
    end
    local srv = setmetatable({
      port = port, ssl_port = ssl_port, pid = pid, prefix = prefix, conf = conf,
      base_url = "http://127.0.0.1:" .. port,
      https_url = ssl_port and ("https://127.0.0.1:" .. ssl_port) or nil,
    }, Server)
    -- srv.stop() and srv:stop() both work (closures over the server)
    srv.stop = function() return Server.stop(srv) end
    srv.error_log = function() return Server.error_log(srv) end
    local why = not launched and "nginx exited with an error" or not pid and "no pid file after 2 s"
    if launched and pid then
      live[srv] = true
      -- ready once its workers run (stop() needs them to clean up after)
      -- and the port answers
      local n, open
      for _ = 1, 250 do
        n = 0
        for _ in pairs(workers_of(pid)) do n = n + 1 end
        open = port_open(port)
        if n >= (o.workers or 1) and open then return srv end
        socket.sleep(0.02)
      end
      why = ("after 5 s: %d of %d workers, port %s"):format(n, o.workers or 1, open and "open" or "closed")
    end
    last = why .. "\n" .. (read_file(prefix .. "/start.out") or "") .. srv:error_log()
    srv.prefix = prefix .. "/__none" -- keep the dir for the next attempt
    srv:stop()
    if not last:find("Address already in use", 1, true) then break end
  end
  sh("rm -rf '" .. prefix .. "'")
  return nil, "nginx did not start: " .. tostring(last)
end

return M

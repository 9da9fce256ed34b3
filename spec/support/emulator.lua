--- Start the wxhw emulator as a subprocess for a spec (runs under Lua 5.4 and
-- LuaJIT; the emulator itself always runs under lua5.4).
--
--   local emu = require "support.emulator"
--   local e = emu.start{ seed = 7, iot_devices = 500 }
--   e.base_url, e.port, e.pid, e.credentials
--   e.control("/__emulator/clock", { advance = 7200 })     -- POST when a body is given
--   e.request("GET", "/cgi-bin/token?...")                 --> status, body, headers
--   e.stop()                                               -- kill by pid
--
-- The emulator also exits by itself when this process is gone (--parent-pid),
-- so a crashed spec run leaves nothing behind.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson.safe"

local M = {}

local function self_pid()
  local f = io.open("/proc/self/stat", "r")
  if not f then return nil end
  local s = f:read("*l"); f:close()
  return tonumber(s:match("^(%d+)"))
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(p)
  local f = io.open(p, "r")
  if not f then return "" end
  local s = f:read("*a"); f:close()
  return s
end

--- Plain HTTP request against base_url. Returns status, body, headers.
local function request(base_url, method, path, body, headers)
  local out = {}
  headers = headers or {}
  if body and not headers["Content-Type"] then headers["Content-Type"] = "application/json" end
  if body then headers["Content-Length"] = tostring(#body) end
  local _, status, h = http.request{
    url = base_url .. path, method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(out),
  }
  return status, table.concat(out), h
end

--- opts: seed, iot_devices, state, keys_dir, args (extra CLI args), timeout.
function M.start(opts)
  opts = opts or {}
  local log = os.tmpname()
  local args = { "--port", "0", "--quiet" }
  local ppid = self_pid()
  if ppid then args[#args + 1] = "--parent-pid"; args[#args + 1] = tostring(ppid) end
  if opts.seed then args[#args + 1] = "--seed"; args[#args + 1] = tostring(opts.seed) end
  if opts.iot_devices then args[#args + 1] = "--iot-devices"; args[#args + 1] = tostring(opts.iot_devices) end
  if opts.state then args[#args + 1] = "--state"; args[#args + 1] = opts.state end
  if opts.keys_dir then args[#args + 1] = "--keys-dir"; args[#args + 1] = opts.keys_dir end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  for i, a in ipairs(args) do args[i] = shell_quote(a) end
  local root = opts.root or "."
  local cmd = "cd " .. shell_quote(root) .. " && exec lua5.4 ./bin/wxhw emulator " .. table.concat(args, " ")
    .. " >" .. shell_quote(log) .. " 2>&1"
  local p = io.popen("(" .. cmd .. ") & echo $!")
  local spawned = tonumber(p:read("*l"))
  p:close()
  local deadline = socket.gettime() + (opts.timeout or 30)
  local base_url, pid
  while socket.gettime() < deadline do
    local out = read_file(log)
    base_url, pid = out:match("WXHW_EMULATOR (%S+) (%d+)")
    if base_url then break end
    if spawned and not io.open("/proc/" .. spawned .. "/stat") then break end
    socket.sleep(0.02)
  end
  if not base_url then
    local out = read_file(log)
    if spawned then os.execute("kill " .. spawned .. " 2>/dev/null") end
    os.remove(log)
    error("emulator did not start: " .. out, 2)
  end
  pid = tonumber(pid)
  local e = { base_url = base_url, port = tonumber(base_url:match(":(%d+)$")), pid = pid, log = log }

  function e.request(method, path, body, headers)
    return request(base_url, method, path, body, headers)
  end

  --- Control API: POST with a body (table or string), GET without. Returns the decoded JSON.
  function e.control(path, body, method)
    if path:sub(1, 1) ~= "/" then path = "/" .. path end
    if path:sub(1, 12) ~= "/__emulator/" then path = "/__emulator" .. path end
    if type(body) == "table" then body = cjson.encode(body) end
    local status, resp = request(base_url, method or (body and "POST" or "GET"), path, body)
    local v = cjson.decode(resp or "")
    if status ~= 200 then
      error("emulator control " .. path .. " -> " .. tostring(status) .. " " .. tostring(resp), 2)
    end
    return v
  end

  --- JSON helper for API calls: returns decoded body, status, headers, raw body.
  function e.json(method, path, body, headers)
    if type(body) == "table" then body = cjson.encode(body) end
    local status, resp, h = request(base_url, method, path, body, headers)
    return cjson.decode(resp or ""), status, h, resp
  end

  function e.stop()
    if e.stopped then return end
    e.stopped = true
    os.execute("kill " .. pid .. " 2>/dev/null")
    -- wait until it is gone so the next spec can reuse resources
    for _ = 1, 100 do
      local f = io.open("/proc/" .. pid .. "/stat")
      if not f then break end
      local st = f:read("*l") or ""; f:close()
      if st:match("^%d+ %b() Z") then break end
      socket.sleep(0.02)
    end
    os.remove(log)
  end

  e.credentials = e.control("/__emulator/credentials")
  return e
end

return M

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

------------------------------------------------------------------ vendor
-- A scripted vendor endpoint for callback specs: a lua5.4 subprocess that
-- logs every request and answers from a rules file the spec can rewrite.
--   local v = emu.vendor{ ["/mp"] = { { status = 200, body = '{"errcode":0}' } } }
--   v.url .. "/mp", v.requests() --> { {method, target, path, headers, body}, ... }
--   v.set_rules{...}; v.stop()
-- Rules per path are used in order; the last one repeats. A rule may have
-- `delay` (seconds), `close = true` (drop the connection without answering),
-- `echo_query = "name"` (answer that query parameter) or `wecom_echo =
-- {token, encoding_aes_key, receive_id}` (answer the decrypted echostr).
local VENDOR = [==[
local socket = require "socket"
local cjson = require "cjson"
local rules_file, log_file, ppid = arg[1], arg[2], arg[3]
local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(0.5)
io.stdout:write("VENDOR ", (select(2, srv:getsockname())), "\n"); io.stdout:flush()
local counts, last_text = {}, nil
while true do
  local alive = io.open("/proc/" .. ppid .. "/stat")
  if not alive then os.exit(0) end
  alive:close()
  local c = srv:accept()
  if c then
    c:settimeout(5)
    local line = c:receive("*l")
    local headers, len = {}, 0
    while true do
      local h = c:receive("*l")
      if not h or h == "" then break end
      local k, v = h:match("^([^:]+):%s*(.*)$")
      if k then headers[k:lower()] = v end
    end
    len = tonumber(headers["content-length"] or 0)
    local body = len > 0 and c:receive(len) or ""
    local method, target = (line or ""):match("^(%S+) (%S+)")
    local path = (target or ""):match("^[^?]*")
    local f = io.open(rules_file); local text = f:read("*a"); f:close()
    if text ~= last_text then counts, last_text = {}, text end -- new rules start over
    local rules = cjson.decode(text)
    local list = rules[path] or rules["*"] or { { status = 200, body = "" } }
    counts[path] = (counts[path] or 0) + 1
    local r = list[math.min(counts[path], #list)]
    local lf = io.open(log_file, "a")
    lf:write(cjson.encode{ method = method, target = target, path = path, headers = headers, body = body,
      time = socket.gettime() }, "\n")
    lf:close()
    if r.delay then socket.sleep(r.delay) end
    if not r.close then
      local b = r.body or ""
      local q = {}
      for k, v in ((target or ""):match("%?(.*)$") or ""):gmatch("([^&=]+)=([^&]*)") do
        q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
      end
      if r.echo_query then b = q[r.echo_query] or "" end
      if r.wecom_echo then -- URL verification: answer the decrypted echostr
        package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
        package.cpath = "./build/5.4/?.so;" .. package.cpath
        local mc = require("wxhw.msgcrypt").new(r.wecom_echo)
        b = mc:decrypt(q.msg_signature, q.timestamp, q.nonce, q.echostr) or "bad signature"
      end
      c:send("HTTP/1.1 " .. (r.status or 200) .. " X\r\nContent-Length: " .. #b ..
        "\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" .. b)
    end
    c:close()
  end
end
]==]

function M.vendor(rules)
  local script, rules_file, log_file, out = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
  local function write(p, s) local f = assert(io.open(p, "w")); f:write(s); f:close() end
  write(script, VENDOR)
  write(rules_file, cjson.encode(rules or {}))
  write(log_file, "")
  local p = io.popen("(exec lua5.4 " .. script .. " " .. rules_file .. " " .. log_file .. " " .. (self_pid() or 1) ..
    " >" .. out .. " 2>&1) & echo $!")
  local pid = tonumber(p:read("*l")); p:close()
  local port
  for _ = 1, 500 do
    port = read_file(out):match("VENDOR (%d+)")
    if port then break end
    socket.sleep(0.01)
  end
  if not port then error("vendor server did not start: " .. read_file(out), 2) end
  local v = { url = "http://127.0.0.1:" .. port, pid = pid }
  function v.set_rules(r) write(rules_file, cjson.encode(r)) end
  function v.clear() write(log_file, "") end
  function v.requests(path) -- all requests, or those to one path
    local list = {}
    for line in read_file(log_file):gmatch("[^\n]+") do
      local r = cjson.decode(line)
      if not path or r.path == path then list[#list + 1] = r end
    end
    return list
  end
  function v.stop()
    os.execute("kill " .. pid .. " 2>/dev/null")
    for _, f in ipairs{ script, rules_file, log_file, out } do os.remove(f) end
  end
  return v
end

return M

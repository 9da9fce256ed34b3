-- The program-mode HTTP server (wxhw.httpserver) against many idle or slow
-- connections (issue 14's class "unauthenticated input costs bounded
-- resources"). Before the fix every connection was kept while it sent a
-- byte every 29 s, without limit: 1100 connections of one byte each made
-- luasocket's select() raise ("descriptor too large for set size") and the
-- gateway's loop died; every later request was refused.
local socket = require "socket"
local files = require "support.files"
local httpserver = require "wxhw.httpserver"

local function lua_bin() return os.getenv("WXHW_RUNTIME") == "luajit" and "luajit" or "lua5.4" end

-- A server in its own process (so its descriptors are its own), answering "ok".
local function spawn_server(seconds)
  local port = require("support.nginx").free_port()
  local dir = files.tmpdir()
  files.write(dir .. "/srv.lua", ([[
    local srv = assert(require("wxhw.httpserver").new{ port = %d, handler = function() return 200, {}, "ok" end })
    io.stdout:write("ready\n"); io.stdout:flush()
    local ok, err = pcall(srv.run, srv, { seconds = %d })
    io.stdout:write(ok and "ended\n" or ("died: " .. tostring(err) .. "\n")); io.stdout:flush()
  ]]):format(port, seconds))
  local build = lua_bin() == "luajit" and "luajit" or "5.4"
  local p = io.popen(("cd %s && LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/%s/?.so;;' %s %s/srv.lua")
    :format(files.quote(files.cwd()), build, lua_bin(), dir))
  assert.equal("ready", p:read("*l"))
  return port, p, dir
end

local function get(port)
  local c = socket.tcp()
  c:settimeout(5)
  local ok, err = c:connect("127.0.0.1", port)
  if not ok then return nil, err end
  c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  local line, rerr = c:receive("*l")
  c:close()
  return line, rerr
end

describe("wxhw.httpserver: many connections", function()
  it("1100 connections holding one byte each neither kill the loop nor keep a request out #slow", function()
    local port, p, dir = spawn_server(6)
    local held = {}
    for _ = 1, 1100 do
      local c = socket.tcp()
      c:settimeout(1)
      if not c:connect("127.0.0.1", port) then c:close(); break end
      c:send("P")
      held[#held + 1] = c
      if #held % 100 == 0 then socket.sleep(0.01) end
    end
    socket.sleep(0.5)
    local line, err = get(port)
    for _, c in ipairs(held) do c:close() end
    local last = p:read("*l")
    p:close()
    files.sh("rm -rf " .. files.quote(dir))
    assert.equal("HTTP/1.1 200 OK", line, tostring(err))
    assert.equal("ended", last)
  end)

  it("keeps at most max_conns, making room by dropping the request waiting longest", function()
    local srv = assert(httpserver.new{ max_conns = 8, handler = function() return 200, {}, "ok" end })
    finally(function() srv:close() end)
    local held = {}
    for i = 1, 20 do
      local c = assert(socket.connect("127.0.0.1", srv.port))
      c:send("GET /slow" .. i)
      held[i] = c
      srv:step(0.01)
    end
    local n = 0
    for _ in pairs(srv.conns) do n = n + 1 end
    assert.is_true(n <= 8, n .. " connections kept")
    local c = assert(socket.connect("127.0.0.1", srv.port))
    c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    c:settimeout(0)
    local buf = ""
    for _ = 1, 50 do
      srv:step(0.01)
      local d, _, partial = c:receive("*a")
      buf = buf .. (d or partial or "")
      if buf:find("\r\n\r\n", 1, true) then break end
    end
    c:close()
    for _, h in ipairs(held) do h:close() end
    assert.matches("^HTTP/1.1 200", buf)
  end)

  it("drops a request that is not whole within request_timeout, however it trickles", function()
    local srv = assert(httpserver.new{ request_timeout = 0.4, handler = function() return 200, {}, "ok" end })
    finally(function() srv:close() end)
    local c = assert(socket.connect("127.0.0.1", srv.port))
    c:settimeout(0)
    local t0, closed = socket.gettime(), false
    local head = "GET / HTTP/1.1\r\nHost: x\r\n"
    for i = 1, 60 do
      c:send(head:sub(i % #head + 1, i % #head + 1)) -- a byte every 20 ms: never idle
      socket.sleep(0.02)
      srv:step(0)
      local _, err = c:receive(1)
      if err == "closed" then closed = true; break end
    end
    local took = socket.gettime() - t0
    c:close()
    assert.is_true(closed, "a trickled head was kept")
    assert.is_true(took >= 0.35 and took < 1, ("dropped after %.2f s"):format(took))
  end)
end)

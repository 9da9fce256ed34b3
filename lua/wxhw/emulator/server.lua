--- A small HTTP/1.1 server and client on a wxhw.loop (luasocket,
-- non-blocking sockets). Keep-alive, many connections, timers, delayed
-- responses, connection resets and truncated bodies for fault injection.
-- Its own HTTP codec, not wxhw.httpserver's: it answers later (defer, delay),
-- resets and truncates, reads chunked and 100-continue bodies up to 16 MiB,
-- and calls the vendor back as a client.
local socket = require "socket"
local clock = require "wxhw.clock"
local loop = require "wxhw.loop"

local M = {}
local Server = {}
Server.__index = Server

local MAX_HEADER = 64 * 1024
local MAX_BODY = 16 * 1024 * 1024
local REASONS = {
  [200] = "OK", [201] = "Created", [204] = "No Content", [400] = "Bad Request",
  [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [413] = "Payload Too Large", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local now = clock.monotonic
local concat, remove = table.concat, table.remove
local find, sub, byte, lower = string.find, string.sub, string.byte, string.lower

local accept, on_readable, flush, client_io, client_done -- below

--- opts: handler(req) -> res, host, port, max_conns (900), log, loop (a
-- wxhw.loop to share; step/run drive it).
function M.new(opts)
  local self = setmetatable({
    host = opts.host or "127.0.0.1", port = opts.port or 0, handler = assert(opts.handler),
    conns = {}, nconns = 0, pending = {}, clients = {}, log = opts.log,
    max_conns = opts.max_conns or 900, -- select() is limited to FD_SETSIZE
    loop = opts.loop or loop.new(),
  }, Server)
  local srv = assert(socket.bind(self.host, self.port, 1024))
  srv:settimeout(0)
  self.srv = srv
  local _, port = srv:getsockname()
  self.port = tonumber(port)
  local conns, clients = self.conns, self.clients
  self.on_read = function(s) local c = conns[s]; if c and not c.closed then on_readable(self, c) end end
  self.on_write = function(s) local c = conns[s]; if c then flush(self, c) end end
  self.on_client_read = function(s) local j = clients[s]; if j then client_io(self, j, false, true) end end
  self.on_client_write = function(s) local j = clients[s]; if j then client_io(self, j, true, false) end end
  self.loop:register(srv, function() accept(self) end)
  return self
end

--- Call fn() after `delay` seconds of real time (an error in it is logged).
function Server:after(delay, fn)
  return self.loop:after(delay, function()
    local ok, err = pcall(fn)
    if not ok then io.stderr:write("wxhw emulator: timer error: ", tostring(err), "\n") end
  end)
end

-- What the loop watches a connection for: reading unless its answer is
-- awaited or the peer is gone, writing while output waits.
local function watch(self, c)
  if c.closed then return end
  self.loop:register(c.sock, not c.waiting and not c.peer_closed and self.on_read or nil,
                     self.pending[c.sock] and self.on_write or nil)
end

local function close_conn(self, c)
  if c.closed then return end
  c.closed = true
  self.loop:unregister(c.sock)
  c.sock:close()
  self.conns[c.sock] = nil
  self.pending[c.sock] = nil
  self.nconns = self.nconns - 1
end

function flush(self, c)
  while c.out[1] do
    local data = c.out[1]
    local last, err, partial = c.sock:send(data, c.outpos)
    if last then
      remove(c.out, 1); c.outpos = 1
    elseif err == "timeout" then
      c.outpos = partial + 1
      if not self.pending[c.sock] then self.pending[c.sock] = c; watch(self, c) end -- wait until writable
      return
    else
      close_conn(self, c); return
    end
  end
  if self.pending[c.sock] then self.pending[c.sock] = nil; watch(self, c) end
  if c.close_after_flush then close_conn(self, c) end
end

local function status_line(status)
  return "HTTP/1.1 " .. status .. " " .. (REASONS[status] or "Status") .. "\r\n"
end

local function serialize(res, keepalive)
  local body = res.body or ""
  local h = { status_line(res.status or 200) }
  local headers = res.headers or {}
  local has_ct = false
  for k, v in pairs(headers) do
    if k:lower() == "content-type" then has_ct = true end
    h[#h + 1] = k .. ": " .. v .. "\r\n"
  end
  if not has_ct and body ~= "" then h[#h + 1] = "Content-Type: application/json; charset=utf-8\r\n" end
  h[#h + 1] = "Content-Length: " .. #body .. "\r\n"
  h[#h + 1] = keepalive and "Connection: keep-alive\r\n\r\n" or "Connection: close\r\n\r\n"
  return concat(h), body
end

local process -- forward

local function deliver(self, c, res, keepalive)
  if c.closed then return end
  if res.reset then
    -- SO_LINGER 0 makes close() send RST: a "connection reset by peer".
    c.sock:setoption("linger", { on = true, timeout = 0 })
    close_conn(self, c)
    return
  end
  local head, body = serialize(res, keepalive and not res.truncate)
  if res.truncate then
    body = body:sub(1, math.floor(#body / 2))
    c.close_after_flush = true
  elseif not keepalive then
    c.close_after_flush = true
  end
  if c.waiting then c.waiting = false; watch(self, c) end
  local data = head .. body
  if not c.out[1] then -- the usual case: the whole answer fits the socket buffer
    local last, err, partial = c.sock:send(data)
    if last then
      if c.close_after_flush then close_conn(self, c) end
    elseif err == "timeout" then
      c.out[1], c.outpos = data, (partial or 0) + 1
      self.pending[c.sock] = c
      watch(self, c)
    else
      close_conn(self, c)
    end
  else
    c.out[#c.out + 1] = data
    flush(self, c)
  end
  if not c.closed and not c.close_after_flush then process(self, c) end
end

local function bad(self, c, status, msg)
  deliver(self, c, { status = status, body = '{"errcode":47001,"errmsg":"' .. msg .. '"}' }, false)
end

local function decode_chunked(buf, start)
  -- returns body, next_pos | nil (need more) | false (malformed)
  local parts, pos = {}, start
  while true do
    local e = buf:find("\r\n", pos, true)
    if not e then return nil end
    local size = tonumber(buf:sub(pos, e - 1):match("^%x+"), 16)
    if not size then return false end
    pos = e + 2
    if size == 0 then
      local fin = buf:find("\r\n\r\n", pos - 2, true)
      if not fin then return nil end
      return concat(parts), fin + 4
    end
    if #buf < pos + size + 1 then return nil end
    parts[#parts + 1] = buf:sub(pos, pos + size - 1)
    pos = pos + size + 2
  end
end

-- Parse and answer as many complete requests as the buffer holds.
function process(self, c)
  while not c.waiting and not c.closed do
    local buf = c.buf
    local he = buf:find("\r\n\r\n", 1, true)
    if not he then
      if #buf > MAX_HEADER then bad(self, c, 431, "header too large") end
      return
    end
    -- plain finds (memchr) instead of patterns: this runs for every request
    local le = find(buf, "\r\n", 1, true)
    local sp1 = find(buf, " ", 1, true)
    local sp2 = sp1 and find(buf, " ", sp1 + 1, true)
    if not sp2 or sp2 > le or sub(buf, sp2 + 1, sp2 + 5) ~= "HTTP/" then return bad(self, c, 400, "bad request line") end
    local method, target, version = sub(buf, 1, sp1 - 1), sub(buf, sp1 + 1, sp2 - 1), sub(buf, sp2 + 6, le - 1)
    if not find(method, "^%u+$") or (version ~= "1.1" and version ~= "1.0") or target == "" then
      return bad(self, c, 400, "bad request line")
    end
    local headers = {}
    local pos = le + 2
    while pos < he + 2 do
      local e = find(buf, "\r\n", pos, true)
      local colon = find(buf, ":", pos, true)
      if colon and colon < e then
        local vs = colon + 1
        while byte(buf, vs) == 32 or byte(buf, vs) == 9 do vs = vs + 1 end
        headers[lower(sub(buf, pos, colon - 1))] = sub(buf, vs, e - 1)
      end
      pos = e + 2
    end
    local body, nextpos = "", he + 4
    if headers["transfer-encoding"] and headers["transfer-encoding"]:lower():find("chunked", 1, true) then
      local b, np = decode_chunked(buf, he + 4)
      if b == false then return bad(self, c, 400, "bad chunked body") end
      if not b then return end
      body, nextpos = b, np
    elseif headers["content-length"] then
      local n = tonumber(headers["content-length"])
      if not n or n < 0 then return bad(self, c, 400, "bad content-length") end
      if n > MAX_BODY then return bad(self, c, 413, "body too large") end
      if #buf < he + 3 + n then
        -- libcurl waits a second for this before sending bodies > 1 KB
        if not c.continued and (headers["expect"] or ""):lower() == "100-continue" then
          c.continued = true
          c.out[#c.out + 1] = "HTTP/1.1 100 Continue\r\n\r\n"
          flush(self, c)
        end
        return
      end
      body = buf:sub(he + 4, he + 3 + n)
      nextpos = he + 4 + n
    end
    c.buf = buf:sub(nextpos)
    c.continued = nil
    local conn_h = (headers["connection"] or ""):lower()
    local keepalive
    if version == "1.0" then keepalive = conn_h:find("keep-alive", 1, true) ~= nil
    else keepalive = not conn_h:find("close", 1, true) end
    local qm = find(target, "?", 1, true)
    local path, query = target, ""
    if qm then path, query = sub(target, 1, qm - 1), sub(target, qm + 1) end
    local req = {
      method = method, target = target, path = path, query = query, headers = headers,
      body = body, peer = c.peer, version = version,
    }
    local ok, res = pcall(self.handler, req)
    if not ok then
      io.stderr:write("wxhw emulator: handler error: ", tostring(res), "\n")
      res = { status = 500, body = '{"errcode":-1,"errmsg":"system error"}' }
    end
    if res.defer then -- answered later (e.g. after a callback to the vendor)
      c.waiting = true
      watch(self, c)
      res.defer(function(final) deliver(self, c, final, keepalive) end)
      return
    end
    if res.delay and res.delay > 0 then
      c.waiting = true
      watch(self, c)
      self:after(res.delay, function() deliver(self, c, res, keepalive) end)
      return
    end
    deliver(self, c, res, keepalive)
  end
end

function accept(self)
  for _ = 1, 64 do
    local s = self.srv:accept()
    if not s then return end
    if self.nconns >= self.max_conns then s:close()
    else
      s:settimeout(0)
      s:setoption("tcp-nodelay", true)
      local c = { sock = s, buf = "", out = {}, outpos = 1, peer = (s:getpeername()), last = now() }
      self.conns[s] = c
      self.nconns = self.nconns + 1
      self.loop:register(s, self.on_read)
    end
  end
end

function on_readable(self, c)
  c.last = now()
  local data, err, partial = c.sock:receive(65536)
  data = data or partial
  if data and data ~= "" then
    c.buf = c.buf .. data
    process(self, c)
  end
  if err == "closed" and not c.closed then
    if c.waiting or c.out[1] then c.close_after_flush = true; c.peer_closed = true; watch(self, c)
    else close_conn(self, c) end
  end
end

------------------------------------------------------------------ client
-- A one-shot HTTP/1.1 client (Connection: close) used for callbacks to the
-- vendor. cb(res | nil, err) with res = {status, headers, body, elapsed}.
function Server:request(opts, cb)
  local host, port, path = opts.url:match("^http://([^/:]+):?(%d*)(.*)$")
  if not host then return cb(nil, "only http:// callback URLs are supported") end
  port = tonumber(port) or 80
  if path == "" then path = "/" end
  local body = opts.body or ""
  local h = { (opts.method or "POST") .. " " .. path .. " HTTP/1.1\r\n",
    "Host: " .. host .. ":" .. port .. "\r\n", "Connection: close\r\n",
    "User-Agent: wxhw-emulator\r\n", "Content-Length: " .. #body .. "\r\n" }
  for k, v in pairs(opts.headers or {}) do h[#h + 1] = k .. ": " .. v .. "\r\n" end
  h[#h + 1] = "\r\n"
  local s = socket.tcp()
  s:settimeout(0)
  local ok, err = s:connect(host, port)
  if not ok and err ~= "timeout" and err ~= "Operation already in progress" then
    s:close()
    return cb(nil, "connect: " .. tostring(err))
  end
  local job = { sock = s, out = concat(h) .. body, pos = 1, buf = {}, cb = cb, started = now() }
  self.clients[s] = job
  self.loop:register(s, self.on_client_read, self.on_client_write)
  job.timer = self.loop:after(opts.timeout or 5, function()
    if self.clients[s] == job then client_done(self, job, nil, "timeout") end
  end)
end

function client_done(self, job, res, err)
  self.clients[job.sock] = nil
  self.loop:cancel(job.timer)
  self.loop:unregister(job.sock)
  job.sock:close()
  if res then res.elapsed = now() - job.started end
  job.cb(res, err)
end

local function parse_response(raw)
  local he = raw:find("\r\n\r\n", 1, true)
  if not he then return nil end
  local status = tonumber(raw:match("^HTTP/%d%.%d (%d+)"))
  local headers = {}
  for k, v in raw:sub(1, he + 1):gmatch("\n([^:\r\n]+):[ \t]*([^\r\n]*)") do headers[k:lower()] = v end
  local body = raw:sub(he + 4)
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    body = decode_chunked(raw, he + 4) or body
  elseif headers["content-length"] then
    body = body:sub(1, tonumber(headers["content-length"]) or #body)
  end
  return { status = status, headers = headers, body = body }
end

function client_io(self, job, writable, readable)
  if job.pos <= #job.out and writable then
    local last, err, partial = job.sock:send(job.out, job.pos)
    if last then job.pos = last + 1
    elseif err == "timeout" then job.pos = (partial or job.pos - 1) + 1
    else return client_done(self, job, nil, "send: " .. tostring(err)) end
    if job.pos > #job.out then self.loop:register(job.sock, self.on_client_read, nil) end -- sent: read only
  end
  if readable then
    local data, err, partial = job.sock:receive(65536)
    data = data or partial
    if data and data ~= "" then job.buf[#job.buf + 1] = data end
    local raw = concat(job.buf)
    -- Answer as soon as a complete response is in (some peers keep the socket open).
    local res = parse_response(raw)
    if res and res.headers["content-length"] and #res.body >= (tonumber(res.headers["content-length"]) or 0) then
      return client_done(self, job, res)
    end
    if err == "closed" then
      if res then return client_done(self, job, res) end
      return client_done(self, job, nil, raw == "" and "connection closed without response" or "malformed response")
    elseif err and err ~= "timeout" then
      return client_done(self, job, nil, "receive: " .. tostring(err))
    end
  end
end

------------------------------------------------------------------ loop
--- One turn of the loop (of everything on it): timers, I/O.
function Server:step(max_wait)
  self.loop:step(max_wait or 0.2)
end

--- Close keep-alive connections idle for more than `idle` seconds, so
-- clients that vanish without a FIN do not pile up.
function Server:sweep(idle)
  local limit = now() - idle
  for _, c in pairs(self.conns) do
    if not c.waiting and not c.out[1] and (c.last or 0) < limit then close_conn(self, c) end
  end
end

function Server:close()
  local l = self.loop
  for s, c in pairs(self.conns) do l:unregister(s); c.sock:close() end
  for s, j in pairs(self.clients) do l:unregister(s); l:cancel(j.timer); j.sock:close() end
  self.conns, self.clients, self.pending = {}, {}, {}
  l:unregister(self.srv)
  self.srv:close()
end

return M

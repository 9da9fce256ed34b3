--- A small HTTP/1.1 server (luasocket, select loop) to run the callback
-- gateway without nginx: Lua 5.4 (and LuaJIT) scripts.
--
--   local srv = require("wxhw.httpserver").new{
--     host = "127.0.0.1", port = 8080,
--     handler = function(method, path, query, headers, body) return status, headers, body end,
--   }
--   srv:run()                  -- or srv:step(timeout); opts.loop = a wxhw.loop shared
--                              -- with other servers, which its run() drives
--
-- `handler` has the shape of callback.router(...). Request bodies need a
-- Content-Length (WeChat, WeCom and WeChat Pay send one); keep-alive is
-- supported; limits: max_header (16 KiB), max_body (64 KiB: a push is a few
-- KB) → 431/413, checked on the declared length before the body is read;
-- such refusals go to on_refused(reason, status) when given.
-- Bytes that trickle in are kept as a list and joined once a head or a
-- whole body can be complete, so each byte is copied a bounded number of
-- times whatever the segment sizes.
-- One handler runs at a time, so handlers must be quick (WeChat's deadlines
-- are 1–5 s anyway); long work belongs in a queue.
-- Connections are anyone's: at most max_conns (256) are kept, a new one
-- making room by dropping the one whose request has waited longest, and a
-- request must arrive whole within request_timeout (10 s) of its first byte
-- (of the connection, for a new one), however it trickles. Without these a
-- byte every 29 s kept a connection for ever, and 1100 of them made
-- select() raise (descriptor above FD_SETSIZE): the loop died.
local socket = require "socket"
local url = require "wxhw.url"
local clock = require "wxhw.clock"
local loop = require "wxhw.loop"

local monotonic = clock.monotonic

local M = {}
M.__index = M
local accept, read, flush, sweep -- the loop's callbacks, below

local REASON = { [200] = "OK", [204] = "No Content", [400] = "Bad Request", [401] = "Unauthorized",
                 [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
                 [411] = "Length Required", [413] = "Payload Too Large", [431] = "Request Header Fields Too Large",
                 [500] = "Internal Server Error", [501] = "Not Implemented", [503] = "Service Unavailable" }

function M.new(opts)
  if type(opts) ~= "table" or type(opts.handler) ~= "function" then
    error("httpserver.new: options with a handler function required", 2)
  end
  local srv, err = socket.bind(opts.host or "127.0.0.1", opts.port or 0, 128)
  if not srv then return nil, require("wxhw.errors").new("io", "cannot listen: " .. tostring(err)) end
  srv:settimeout(0)
  local _, port = srv:getsockname()
  local self = setmetatable({ server = srv, port = tonumber(port), handler = opts.handler, conns = {},
                        max_header = opts.max_header or 16384, max_body = opts.max_body or 65536,
                        idle_timeout = opts.idle_timeout or 30, on_error = opts.on_error,
                        on_refused = opts.on_refused,
                        max_conns = opts.max_conns or 256, request_timeout = opts.request_timeout or 10,
                        requests = 0, loop = opts.loop or loop.new() }, M)
  self.on_read = function(s) read(self, s) end
  self.on_write = function(s) flush(self, s) end
  self.loop:register(srv, function() accept(self) end)
  -- idle connections and requests past their deadline
  self.sweeper = self.loop:every(0.05, function() sweep(self) end)
  return self
end

local function respond(c, status, headers, body, keep)
  body = body or ""
  local lines = { ("HTTP/1.1 %d %s"):format(status, REASON[status] or "Status") }
  local has_ct = false
  for k, v in pairs(headers or {}) do
    if k:lower() ~= "content-length" and k:lower() ~= "connection" then
      lines[#lines + 1] = k .. ": " .. tostring(v)
      if k:lower() == "content-type" then has_ct = true end
    end
  end
  if not has_ct and #body > 0 then lines[#lines + 1] = "Content-Type: text/plain; charset=utf-8" end
  lines[#lines + 1] = "Content-Length: " .. #body
  lines[#lines + 1] = "Connection: " .. (keep and "keep-alive" or "close")
  c.out = c.out .. table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
  c.close_after = not keep
end

-- A request refused before any handler saw it: answered, the connection
-- closed, and reported to on_refused(reason, status) (a refusal log, metrics).
local function refuse(self, c, status, reason, msg)
  respond(c, status, nil, msg, false)
  if self.on_refused then pcall(self.on_refused, reason, status) end
end

-- Parses as many complete requests as the buffer holds.
local function process(self, c)
  while not c.close_after do
    c.need = nil
    -- the search resumes where the last one stopped (3 bytes back for a
    -- terminator split across reads)
    local head_end = c.buf:find("\r\n\r\n", c.scanned or 1, true)
    if not head_end then
      if #c.buf > self.max_header then refuse(self, c, 431, "header_too_large", "header too large") end
      c.scanned = math.max(1, #c.buf - 2)
      return
    end
    if head_end > self.max_header then refuse(self, c, 431, "header_too_large", "header too large"); return end
    local head = c.buf:sub(1, head_end - 1)
    local method, target, version = head:match("^(%u+) (%S+) HTTP/(%d%.%d)\r?\n?")
    if not method then refuse(self, c, 400, "bad_request_line", "bad request line"); return end
    local headers = {}
    for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
      headers[name:lower()] = value
    end
    if headers["transfer-encoding"] then refuse(self, c, 411, "length_required", "Content-Length required"); return end
    local cl = headers["content-length"] or "0"
    local len = #cl <= 15 and tonumber(cl:match("^(%d+)[ \t]*$")) -- 1*DIGIT (RFC 9110), no sign, hex or exponent
    if not len then refuse(self, c, 400, "bad_content_length", "bad Content-Length"); return end
    if len > self.max_body then refuse(self, c, 413, "body_too_large", "body too large"); return end
    if #c.buf < head_end + 3 + len then c.need = head_end + 3 + len; return end
    local body = c.buf:sub(head_end + 4, head_end + 3 + len)
    c.buf, c.scanned = c.buf:sub(head_end + 4 + len), nil
    local path, qs = target:match("^([^?]*)%??(.*)$")
    local keep = (version == "1.1" and (headers.connection or ""):lower() ~= "close")
        or (headers.connection or ""):lower() == "keep-alive"
    self.requests = self.requests + 1
    c.started = #c.buf > 0 and monotonic() or nil -- the next request's clock
    local ok, status, rh, rb = pcall(self.handler, method, path, url.parse_query(qs), headers, body)
    if not ok then
      if self.on_error then pcall(self.on_error, status) end
      status, rh, rb = 500, nil, "internal error"
    end
    respond(c, status or 500, rh, rb, keep)
  end
end

local function drop(self, sock)
  self.conns[sock] = nil
  self.loop:unregister(sock)
  sock:close()
end

-- A connection done with: its request answered on a connection that closes,
-- the peer gone, idle too long, or a request not whole in time.
local function finished(self, c, now)
  return c.close_after or c.peer_closed or now - c.seen > self.idle_timeout
      or c.started and now - c.started > self.request_timeout
end

-- At max_conns: drops the connection whose request has waited longest
-- (else the longest idle one), so a flood of slow clients cannot keep a
-- quick one out.
local function make_room(self)
  local victim, oldest, count = nil, math.huge, 0
  for s, c in pairs(self.conns) do
    count = count + 1
    local t = c.started or (c.seen + self.request_timeout) -- idle ones after any pending request
    if #c.out == 0 and t < oldest then victim, oldest = s, t end
  end
  if count >= self.max_conns and victim then drop(self, victim) end
end

-- Sends what the connection has queued; what the socket does not take
-- waits for the loop to say it is writable.
function flush(self, s)
  local c = self.conns[s]
  if not c then return end
  if #c.out > 0 then
    local n, err, last = s:send(c.out)
    local sent = n or last or 0
    if sent > 0 then c.out, c.seen = c.out:sub(sent + 1), monotonic() end
    if err == "closed" then c.out, c.peer_closed = "", true end
  end
  if #c.out > 0 then
    self.loop:register(s, self.on_read, self.on_write)
  else
    self.loop:register(s, self.on_read, nil)
    if finished(self, c, monotonic()) then drop(self, s) end
  end
end

function accept(self)
  local now = monotonic()
  for _ = 1, 64 do
    local nc = self.server:accept()
    if not nc then break end
    nc:settimeout(0)
    nc:setoption("tcp-nodelay", true)
    make_room(self)
    self.conns[nc] = { buf = "", parts = {}, held = 0, out = "", seen = now, started = now }
    self.loop:register(nc, self.on_read)
  end
end

function read(self, s)
  local c = self.conns[s]
  if not c then return end
  local now = monotonic()
  local data, err, partial = s:receive(65536)
  data = data or partial
  if data and #data > 0 and not c.close_after then
    c.parts[#c.parts + 1], c.held, c.seen = data, c.held + #data, now
    c.started = c.started or now
    -- join when the awaited body may be complete (any read while a head is awaited)
    if not c.need or #c.buf + c.held >= c.need then
      c.buf = c.buf .. table.concat(c.parts)
      c.parts, c.held = {}, 0
      process(self, c)
    end
  end
  if err == "closed" then c.peer_closed = true end
  flush(self, s)
end

function sweep(self)
  local now = monotonic()
  for s, c in pairs(self.conns) do
    if #c.out == 0 and finished(self, c, now) then drop(self, s) end
  end
end

--- One turn of the loop (of every server on it).
function M:step(timeout) self.loop:step(timeout or 0.05) end

--- Runs the loop: opts.seconds, or opts.until_fn() returning true to stop.
function M:run(opts) return self.loop:run(opts, 0.05) end

function M:__tostring()
  return ("wxhw.HttpServer(127.0.0.1:%d, %d requests)"):format(self.port, self.requests)
end

function M:close()
  for s in pairs(self.conns) do self.loop:unregister(s); s:close() end
  self.conns = {}
  self.loop:cancel(self.sweeper)
  self.loop:unregister(self.server)
  self.server:close()
end

return M

--- A small HTTP/1.1 client on nginx cosockets (ngx.socket.tcp): keep-alive
-- pools via setkeepalive, TLS with certificate and host-name verification
-- always on. Responses are read by wxhw.transport.http1_response (the limits
-- and framing of csrc/http/h1.c); `timeout` is a deadline for the whole exchange.
-- Runs only inside nginx-lua, in phases where cosockets exist (content,
-- access, rewrite, timers). lua-resty-http is not packaged by Debian.
--
--   local http1 = require "wxhw.transport.http1"
--   local res, err = http1.request({ method =, url =, headers =, body =, timeout = },
--     { connect_timeout = s, timeout = s, max_body = n, pool_size = n, keepalive = s,
--       resolve = { ["api.example"] = "10.0.0.1" } })
local errors = require "wxhw.errors"
local clock = require "wxhw.clock"
local response = require "wxhw.transport.http1_response"

-- Loadable outside nginx too (parse_url is plain Lua and has unit specs).
local in_nginx = clock.in_nginx()
local tcp = in_nginx and clock.ngx().socket.tcp
local now = clock.now -- reads the clock itself: no ngx.update_time needed
local lower, tonumber, find, sub = string.lower, tonumber, string.find, string.sub

local M = {}

local DEFAULT_MAX_BODY = 16 * 1024 * 1024
local RECEIVE_CHUNK = 65536

local function fail(kind, reason, message, fields)
  local e = errors.new(kind, message, fields)
  e.reason = reason
  return nil, e
end

local function net_error(reason, detail, sent, retryable)
  return fail("http", reason, reason .. ": " .. tostring(detail),
    { detail = tostring(detail), sent = sent, retryable = retryable })
end

-- Maps a cosocket error string onto the shared classes.
local function classify(detail, phase)
  if detail == "timeout" then return "timeout", true end
  if find(detail, "resolve", 1, true) or find(detail, "resolver", 1, true) then return "dns", true end
  if phase == "connect" then return "connect", true end
  if phase == "tls" then return "tls", false end
  return "reset", true
end

--- Splits an absolute http(s) URL. Returns scheme, host, port, target.
function M.parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return fail("input", "url", "bad URL (no scheme://)") end
  scheme = lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    return fail("input", "scheme", "unsupported URL scheme " .. sub(scheme, 1, 20) .. " (use http or https)")
  end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  if authority == "" or find(authority, "@", 1, true) then
    return fail("input", "url", "bad URL (missing host, or credentials in the URL)")
  end
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return fail("input", "url", "bad URL (host)") end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if port < 1 or port > 65535 then return fail("input", "url", "bad URL (port)") end
  target = target:gsub("#.*$", "")
  if target == "" then target = "/" elseif sub(target, 1, 1) == "?" then target = "/" .. target end
  if find(target, "[%z\1-\32\127]") then return fail("input", "url", "bad URL (spaces or control characters)") end
  return scheme, lower(host), port, target
end

local function valid_token(s)
  return type(s) == "string" and s ~= "" and not find(s, "[^%w!#$%%&'*+%-.^_`|~]")
end

local function valid_value(s)
  return not find(s, "[\r\n%z]")
end

-- Appends "Name: value" lines; returns true, whether they ask to close; or nil, err.
local function add_headers(lines, headers, seen)
  local close = false
  for name, v in pairs(headers or {}) do
    if type(name) ~= "string" then error("request.headers: names must be strings", 3) end
    if not valid_token(name) then
      return fail("input", "header", "header name " .. (valid_value(name) and sub(name, 1, 60) or "(with CR/LF)")
        .. " is not a valid HTTP token")
    end
    local values = type(v) == "table" and v or { v }
    if v ~= false then
      for _, x in ipairs(values) do
        if type(x) ~= "string" and type(x) ~= "number" then
          error("request.headers[" .. name .. "] must be a string or a list of strings", 3)
        end
        x = tostring(x)
        if not valid_value(x) then
          return fail("input", "header", "header " .. sub(name, 1, 60) .. ": value contains CR, LF or NUL (refused)")
        end
        lines[#lines + 1] = name .. ": " .. x .. "\r\n"
        -- asking the server to close: the connection is not pooled afterwards (RFC 9112 9.6)
        if lower(name) == "connection" and find("," .. lower(x) .. ",", "[, \t]close[, \t]") then close = true end
      end
      seen[lower(name)] = true
    end
  end
  return true, close
end

-- Milliseconds left before the deadline (at most cap_ms), or nil once it passed.
local function left_ms(deadline, cap_ms)
  local ms = math.floor((deadline - now()) * 1000)
  if ms <= 0 then return nil end
  return cap_ms and math.min(ms, cap_ms) or ms
end

local function timed_out(sent)
  return net_error("timeout", "timeout", sent, true)
end

-- One attempt on one connection. `timeout` is a deadline for the whole
-- exchange (connect, TLS, send, every receive), as in the C engine.
-- Returns res | nil, err, retry_stale.
local function exchange(req, o, parts, deadline, t0)
  local scheme, host, port, ip = parts.scheme, parts.host, parts.port, parts.ip
  local sock = tcp()
  local ms = left_ms(deadline, math.floor((o.connect_timeout or 5) * 1000))
  if not ms then return timed_out(false) end
  sock:settimeout(ms)
  -- the pool key carries scheme, host (the SNI name) and port, so two names on
  -- one address never share a TLS connection
  local ok, err = sock:connect(ip, port, { pool = scheme .. ":" .. host .. ":" .. port, pool_size = o.pool_size })
  if not ok then
    local reason, retryable = classify(err, "connect")
    return net_error(reason, err, false, retryable)
  end
  local reused = sock:getreusedtimes() or 0
  if scheme == "https" and reused == 0 then
    ms = left_ms(deadline)
    if not ms then sock:close(); return timed_out(false) end
    sock:settimeout(ms)
    -- Ask for the session object (nil, not false): with `false`, Debian's
    -- lua-resty-core 0.1.25 + ngx_lua 0.10.23 can report success for a
    -- handshake whose verification failed; with nil the failure surfaces,
    -- sometimes as an assertion error, which pcall turns into a refusal.
    local pok, sess
    pok, sess, err = pcall(sock.sslhandshake, sock, nil, host, true)
    if not pok then sess, err = nil, "certificate verification failed (" .. tostring(sess):match("[^\n]*") .. ")" end
    if not sess then
      sock:close()
      local reason, retryable = classify(err, "tls")
      return net_error(reason, err, false, retryable)
    end
  end
  ms = left_ms(deadline)
  if not ms then sock:close(); return timed_out(false) end
  sock:settimeout(ms)
  local bytes
  bytes, err = sock:send(parts.request)
  if not bytes then
    sock:close()
    local r, e = net_error((classify(err, "send")), err, true, true)
    return r, e, reused > 0 and err == "closed"
  end
  local function fill()
    local rest = left_ms(deadline)
    if not rest then return nil, "timeout" end
    sock:settimeout(rest)
    return sock:receiveany(RECEIVE_CHUNK)
  end
  local max_body = req.max_body or o.max_body or DEFAULT_MAX_BODY
  local res, why, detail = response.read(fill, { head = parts.method == "HEAD", max_body = max_body })
  if not res then
    sock:close()
    if why == "too_large" then
      return fail("http", "too_large", ("too_large: response body exceeds %d bytes"):format(max_body),
        { retryable = false, sent = true })
    end
    if why == "protocol" then return net_error("protocol", detail, true, false) end
    local reason, retryable = classify(why, "read")
    local r, e = net_error(reason, why, true, retryable)
    -- a pooled connection the server had already closed: nothing was read, try a fresh one
    return r, e, reused > 0 and detail == 0 and (why == "closed" or why == "connection reset by peer")
  end
  if res.keep_alive and not parts.close then
    sock:setkeepalive(math.floor((o.keepalive or 60) * 1000), o.pool_size or 64)
  else
    sock:close()
  end
  res.keep_alive = nil
  res.time = now() - t0
  return res
end

--- Performs one request. Returns a response {status, headers, body, time,
-- http_version} or nil, err (classified as the libcurl transport does).
function M.request(req, o)
  o = o or {}
  if not in_nginx then error("wxhw.transport.http1 needs nginx cosockets; use wxhw.transport", 2) end
  if type(req) ~= "table" then error("request must be a table", 2) end
  if type(req.url) ~= "string" then error("request.url must be a string", 2) end
  local method = req.method or "GET"
  if type(method) ~= "string" then error("request.method must be a string", 2) end
  if req.body ~= nil and type(req.body) ~= "string" then error("request.body must be a string", 2) end
  if req.timeout ~= nil and not (type(req.timeout) == "number" and req.timeout > 0) then
    error("request.timeout must be > 0", 2)
  end
  if not valid_token(method) then return fail("input", "method", "bad HTTP method") end
  local max_req = o.max_request_body or DEFAULT_MAX_BODY
  if req.body and #req.body > max_req then
    return fail("input", "too_large", ("request body of %d bytes exceeds max_request_body (%d)"):format(#req.body, max_req))
  end
  local scheme, host, port, target = M.parse_url(req.url)
  if not scheme then return nil, host end
  local resolve = o.resolve and o.resolve[host]
  local authority = (find(host, ":", 1, true) and ("[" .. host .. "]") or host)
    .. (((scheme == "http" and port == 80) or (scheme == "https" and port == 443)) and "" or (":" .. port))
  local lines = { method, " ", target, " HTTP/1.1\r\n" }
  local seen = {}
  local ok, asks_close = add_headers(lines, req.headers, seen)
  if not ok then return nil, asks_close end
  if not seen.host then lines[#lines + 1] = "Host: " .. authority .. "\r\n" end
  if not seen["user-agent"] then lines[#lines + 1] = "User-Agent: " .. (o.user_agent or "wxhw/0.1 ngx_lua") .. "\r\n" end
  local body = req.body
  if body == nil and (method == "POST" or method == "PUT" or method == "PATCH") then body = "" end
  if body and not seen["content-length"] then lines[#lines + 1] = "Content-Length: " .. #body .. "\r\n" end
  lines[#lines + 1] = "\r\n"
  if body and body ~= "" then lines[#lines + 1] = body end
  local t0 = now()
  local total = req.timeout or o.timeout or 10
  local parts = {
    scheme = scheme, host = host, port = port, ip = resolve or host, method = method, request = lines,
    close = asks_close,
  }
  local deadline = t0 + total
  local res, err, stale
  for _ = 1, 2 do
    res, err, stale = exchange(req, o, parts, deadline, t0)
    if res or not stale then break end
  end
  if not res then
    err.time = now() - t0
    return nil, err
  end
  return res
end

return M

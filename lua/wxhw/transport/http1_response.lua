--- Reads one HTTP/1.x response (RFC 9112) from a byte source: the Lua twin
-- of csrc/http/h1.c, with the same limits, the same refusals and the same
-- framing (spec/http1_differential_spec.lua holds them to that). Pure Lua:
-- wxhw.transport.http1 feeds it from a cosocket, specs from strings.
--
--   local res, why, detail = read(fill, { head = bool, max_body = n })
--   fill() -> bytes | nil, err ("closed", "timeout", ...)
--   res = { status =, http_version = "1.x", headers = { lower-name = value | { values } },
--           body =, keep_alive = bool (false when bytes came beyond the response) }
--   why = "protocol" (detail says what), "too_large", or fill's err (detail =
--   bytes received so far, 0 when nothing came at all)
local find, sub, byte, lower, concat = string.find, string.sub, string.byte, string.lower, table.concat

local M = {}

M.MAX_HEAD = 64 * 1024  -- status line, headers, interim responses and trailers (WXHW_H1_MAX_HEAD)
M.MAX_CHUNK_LINE = 4096 -- a chunk-size line with its extensions, or a chunk's CRLF

local Reader = {}
Reader.__index = Reader

local function reader(fill)
  return setmetatable({ fill = fill, buf = "", pos = 1, received = 0, head_bytes = 0 }, Reader)
end

-- Appends one piece from the source; true, or nil, err.
function Reader:more()
  local data, err = self.fill()
  if not data then return nil, err end
  if data ~= "" then
    self.buf = sub(self.buf, self.pos) .. data
    self.pos = 1
    self.received = self.received + #data
  end
  return true
end

function Reader:avail() return #self.buf - self.pos + 1 end

-- Takes up to n buffered bytes.
function Reader:take(n)
  local a = self:avail()
  if n > a then n = a end
  local s = sub(self.buf, self.pos, self.pos + n - 1)
  self.pos = self.pos + #s
  return s
end

-- One line without its LF (and one CR before it). `head` lines count
-- toward MAX_HEAD across the whole response; others have MAX_CHUNK_LINE each.
-- A line arriving in pieces is gathered in a table (linear, however slow the
-- drip). Returns the line, or nil, why, detail.
function Reader:line(head)
  local cap = head and M.MAX_HEAD - self.head_bytes or M.MAX_CHUNK_LINE
  local why = head and "response head too large" or "chunk size line too long"
  local nl = find(self.buf, "\n", self.pos, true)
  if not nl then
    local len = self:avail()
    local pieces = { sub(self.buf, self.pos) }
    repeat
      if len > cap then return nil, "protocol", why end
      local data, err = self.fill()
      if not data then return nil, err, self.received end
      self.received = self.received + #data
      nl = find(data, "\n", 1, true)
      len = len + (nl or #data)
      pieces[#pieces + 1] = data
    until nl
    self.buf, self.pos, nl = concat(pieces), 1, len
  end
  local len = nl - self.pos + 1
  if len > cap then return nil, "protocol", why end
  if head then self.head_bytes = self.head_bytes + len end
  local s = sub(self.buf, self.pos, nl - 1)
  self.pos = nl + 1
  if byte(s, -1) == 13 then s = sub(s, 1, -2) end
  if find(s, "[%z\r]") then return nil, "protocol", "NUL or bare CR in the response head" end
  return s
end

local function is_ows(s) return s == " " or s == "\t" end

-- "name: value" -> name, value (OWS trimmed), or nil.
local function split_header(s)
  return s:match("^([%w!#$%%&'*+%-.^_`|~]+):[ \t]*(.-)[ \t]*$")
end

-- Calls fn(element) for each comma-separated element, trimmed; empty ones
-- are skipped in a list (RFC 9110 5.6.1) and refused when `strict`.
local function each_element(v, strict, fn)
  for e in (v .. ","):gmatch("([^,]*),") do
    e = e:match("^[ \t]*(.-)[ \t]*$")
    if e ~= "" then
      local ok, why, detail = fn(e)
      if not ok then return nil, why, detail end
    elseif strict then
      return nil, "protocol", "malformed Content-Length"
    end
  end
  return true
end

local function status_line(p, s)
  if #s < 12 or not find(s, "^HTTP/1%.[01] ") then return nil, "protocol", "malformed status line" end
  if not find(s, "^[1-9]%d%d", 10) then return nil, "protocol", "malformed status code" end
  if #s > 12 and sub(s, 13, 13) ~= " " then return nil, "protocol", "malformed status line" end
  local status = tonumber(sub(s, 10, 12))
  p.minor, p.status = sub(s, 8, 8), status
  if status == 101 then return nil, "protocol", "unexpected 101 Switching Protocols" end
  p.cl, p.has_te, p.te_chunked, p.conn_close, p.conn_keep = nil, false, false, false, false
  p.headers = {}
  return true
end

-- The value is kept as a string of digits (leading zeros dropped) so that
-- LuaJIT's doubles do not round it; the range is csrc/http/h1.c's 64-bit one.
local function content_length_value(p, e)
  if find(e, "[^0-9]") then return nil, "protocol", "malformed Content-Length" end
  local digits = e:match("^0*(%d*)$")
  if digits == "" then digits = "0" end
  if #digits > 20 or #digits == 20 and digits > "18446744073709551609" then
    return nil, "protocol", "Content-Length out of range"
  end
  if p.cl and p.cl ~= digits then return nil, "protocol", "conflicting Content-Length values" end
  p.cl = digits
  return true
end

local function header_line(p, s, interim)
  if is_ows(sub(s, 1, 1)) then return nil, "protocol", "obsolete line folding in a header" end
  local name, value = split_header(s)
  if not name then return nil, "protocol", "malformed header line" end
  if interim then return true end
  local lname = lower(name)
  local ok, why, detail = true, nil, nil
  if lname == "content-length" then
    ok, why, detail = each_element(value, true, function(e) return content_length_value(p, e) end)
  elseif lname == "transfer-encoding" then
    p.has_te = true
    ok, why, detail = each_element(value, false, function(e)
      -- only "chunked", once and last, is a framing we read
      if p.te_chunked or lower(e) ~= "chunked" then return nil, "protocol", "unsupported Transfer-Encoding" end
      p.te_chunked = true
      return true
    end)
    if ok and not p.te_chunked then ok, why, detail = nil, "protocol", "unsupported Transfer-Encoding" end
  elseif lname == "connection" then
    each_element(value, false, function(e)
      e = lower(e)
      if e == "close" then p.conn_close = true elseif e == "keep-alive" then p.conn_keep = true end
      return true
    end)
  end
  if not ok then return nil, why, detail end
  local h, old = p.headers, p.headers[lname]
  if old == nil then h[lname] = value
  elseif type(old) == "table" then old[#old + 1] = value
  else h[lname] = { old, value } end
  return true
end

-- Status line and headers of the final response (1xx ones skipped).
local function read_head(r, p)
  while true do
    local s, why, detail = r:line(true)
    if not s then return nil, why, detail end
    local ok
    ok, why, detail = status_line(p, s)
    if not ok then return nil, why, detail end
    local interim = p.status < 200
    while true do
      s, why, detail = r:line(true)
      if not s then return nil, why, detail end
      if s == "" then break end
      ok, why, detail = header_line(p, s, interim)
      if not ok then return nil, why, detail end
    end
    if not interim then return true end
  end
end

-- Moves n framed body bytes into parts; true, or nil, why, detail.
local function body_bytes(r, p, n, parts)
  while n > 0 do
    if r:avail() == 0 then
      local ok, err = r:more()
      if not ok then return nil, err, r.received end
    end
    local s = r:take(n)
    p.body_len = p.body_len + #s
    if p.body_len > p.max_body then return nil, "too_large" end
    parts[#parts + 1] = s
    n = n - #s
  end
  return true
end

local function chunk_size(s)
  local hex, rest = s:match("^(%x*)(.*)$")
  if hex == "" then return nil, "protocol", "malformed chunk size" end
  local sig = hex:match("^0*(.*)$")
  if #sig > 16 then return nil, "protocol", "chunk size out of range" end
  -- past 2^52 a size only means "more than max_body"; keep it exact in a double
  if #sig > 13 then sig = "fffffffffffff" end
  if not find(rest, "^[ \t]*$") and not find(rest, "^[ \t]*;") then
    return nil, "protocol", "malformed chunk size"
  end
  return sig == "" and 0 or tonumber(sig, 16)
end

local function read_chunked(r, p, parts)
  while true do
    local s, why, detail = r:line(false)
    if not s then return nil, why, detail end
    local size
    size, why, detail = chunk_size(s)
    if not size then return nil, why, detail end
    if size == 0 then break end
    local ok
    ok, why, detail = body_bytes(r, p, size, parts)
    if not ok then return nil, why, detail end
    s, why, detail = r:line(false)
    if not s then return nil, why, detail end
    if s ~= "" then return nil, "protocol", "missing CRLF after chunk data" end
  end
  while true do -- trailers: checked, then dropped (RFC 9110 6.5.1)
    local s, why, detail = r:line(true)
    if not s then return nil, why, detail end
    if s == "" then return true end
    if is_ows(sub(s, 1, 1)) then return nil, "protocol", "obsolete line folding in a trailer" end
    if not split_header(s) then return nil, "protocol", "malformed header line" end
  end
end

local function read_until_close(r, p, parts)
  while true do
    local n = r:avail()
    if n > 0 then
      local ok, why = body_bytes(r, p, n, parts)
      if not ok then return nil, why end
    end
    local ok, err = r:more()
    if not ok then
      if err == "closed" then return true end
      return nil, err, r.received
    end
  end
end

function M.read(fill, o)
  local r = reader(fill)
  local p = { max_body = o.max_body, body_len = 0 }
  local ok, why, detail = read_head(r, p)
  if not ok then return nil, why, detail end
  if p.has_te then
    if p.minor == "0" then return nil, "protocol", "Transfer-Encoding in an HTTP/1.0 response" end
    if p.cl then return nil, "protocol", "both Transfer-Encoding and Content-Length" end
  end
  local keep = p.minor == "1" and not p.conn_close or p.minor == "0" and p.conn_keep and not p.conn_close
  local parts = {}
  if o.head or p.status == 204 or p.status == 304 then -- luacheck: ignore 542
    -- no body, whatever the headers say
  elseif p.has_te then
    ok, why, detail = read_chunked(r, p, parts)
  elseif p.cl then
    if tonumber(p.cl) > p.max_body then return nil, "too_large" end
    ok, why, detail = body_bytes(r, p, tonumber(p.cl), parts)
  else
    keep = false
    ok, why, detail = read_until_close(r, p, parts)
  end
  if not ok then return nil, why, detail end
  return {
    status = p.status, http_version = "1." .. p.minor, headers = p.headers, body = concat(parts),
    keep_alive = keep and r:avail() == 0,
  }
end

return M

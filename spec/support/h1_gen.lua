--- Random HTTP/1.x responses for the parser differential
-- (spec/http1_differential_spec.lua, fuzz/http1_differential.lua): mostly
-- well-formed, each with a few defects drawn from what RFC 9112 parsers get
-- wrong: NUL/CR in the head, bad status codes, 1xx and 101, obs-fold, odd
-- Transfer-Encoding, Content-Length with Transfer-Encoding, malformed, empty
-- or duplicate Content-Length, chunk extensions, trailers, huge chunk sizes,
-- LF-only line ends, truncation. ASCII bytes only (the raw server's routes
-- travel as JSON).
--
--   local gen = require("support.h1_gen").new(seed)
--   local bytes, method = gen:response()
--   require("support.h1_gen").outcome(res, err)  -- a JSON-able summary to compare
local M = {}

local G = {}
G.__index = G

function M.new(seed)
  return setmetatable({ state = (seed or 1) % 2147483647 }, G)
end

-- Park-Miller: the same sequence under Lua 5.4 and LuaJIT.
function G:int(lo, hi)
  self.state = self.state * 16807 % 2147483647
  return lo + self.state % (hi - lo + 1)
end

function G:chance(p) return self:int(1, 1000) <= p * 1000 end

function G:pick(list) return list[self:int(1, #list)] end

-- A chance of a defect; none in a clean response.
function G:defect(p) return not self.clean and self:chance(p) end

function G:text(n, alphabet)
  alphabet = alphabet or "abcdefghijklmnopqrstuvwxyz0123456789 -_.,;:/"
  local t = {}
  for i = 1, n do
    local k = self:int(1, #alphabet)
    t[i] = alphabet:sub(k, k)
  end
  return table.concat(t)
end

-- Any ASCII byte, NUL and controls included.
function G:bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(self:int(0, 127)) end
  return table.concat(t)
end

local STATUS_LINES = {
  "HTTP/1.1 %d OK", "HTTP/1.1 %d OK", "HTTP/1.1 %d OK", "HTTP/1.0 %d OK", "HTTP/1.1 %d",
  "HTTP/1.1 %d ", "HTTP/1.1 %d Reason With\tTab", "HTTP/1.1 %d0 OK", "HTTP/1.1 %d1", "HTTP/1.1  %d OK",
  "HTTP/1.2 %d OK", "HTTP/2 %d OK", "http/1.1 %d OK", "HTTP/1.1 0%d OK", "HTTP/1.1 %dOK",
  "HTTP/1.1 %d O\0K", "HTTP/1.1 %d O\rK", "SMTP %d ready", "HTTP/1.1 -%d", " HTTP/1.1 %d OK",
}
local FINAL = { 200, 200, 200, 201, 204, 206, 304, 400, 404, 500, 599, 999, 99, 101 }
local INTERIM = { 100, 102, 103, 199, 101 }

local PLAIN_HEADERS = {
  "Content-Type: text/plain", "X-A: 1", "X-A: 2", "X-Empty:", "X-Space:   padded   ", "Server: raw",
  "Connection: close", "Connection: keep-alive", "Connection: Keep-Alive, Upgrade", "X-Tab:\tv\t",
  "Set-Cookie: a=b; Path=/", "X-Long: " .. string.rep("L", 300),
}
local BAD_HEADERS = {
  "X-Bad : v", " X-Fold: v", "\tX-Fold: v", ": novalue", "NoColon", "X-N\0ul: v", "X-V: a\0b",
  "X-V: a\rb", "X(bad): v", "X-Ok: v\r", "X-Utf: caf\127",
}
local TE_VALUES = {
  "chunked", "chunked", "chunked", "Chunked", "CHUNKED", " chunked ", "chunked,", ",chunked",
  "xchunkedx", "gzip, chunked", "chunked, gzip", "chunked, chunked", "", "identity", "chunked;q=1",
}

function G:eol()
  if self.lf_only then return "\n" end
  if not self:defect(0.03) then return "\r\n" end
  return self:pick { "\n", "\n", "\r\r\n", "\r" }
end

function G:status_line(code)
  local fmt = self:defect(0.15) and self:pick(STATUS_LINES) or STATUS_LINES[self:int(1, 6)]
  return fmt:format(code) .. self:eol()
end

-- Content-Length values: right (n), wrong, malformed, or several.
function G:content_length(n)
  if not self:defect(0.4) then return tostring(n) end
  local v = self:pick {
    n, n, n, n - 1 > 0 and n - 1 or 0, n + 3, "", " " .. n .. " ", n .. ", " .. n, n .. ", " .. n + 1,
    "+" .. n, "0x" .. n, "-1", n .. ",", "00" .. n, "99999999999999999999", "18446744073709551616", n .. " " .. n,
  }
  return tostring(v)
end

function G:headers(t)
  local n = self:int(0, 4)
  for _ = 1, n do t[#t + 1] = self:pick(PLAIN_HEADERS) .. self:eol() end
  if self:defect(0.1) then t[#t + 1] = self:pick(BAD_HEADERS) .. self:eol() end
end

function G:chunked_body(t, body)
  local pos = 1
  while pos <= #body do
    local n = math.min(self:int(1, 40), #body - pos + 1)
    local size = ("%x"):format(n)
    if self:chance(0.1) then size = size:upper() end
    if self:chance(0.05) then size = "000" .. size end
    if self:defect(0.03) then size = self:pick { "zz", "-1", "ffffffffffffffffff", "fffffffff", "", " " .. size, "0x" .. size } end
    if self:chance(0.1) then size = size .. self:pick { ";a=b", " ;x", ";", "\t", " ", ";q=\"1\"", " x" } end
    t[#t + 1] = size .. self:eol() .. body:sub(pos, pos + n - 1)
    t[#t + 1] = self:defect(0.03) and self:pick { "", "X\r\n", " \r\n" } or self:eol()
    pos = pos + n
  end
  t[#t + 1] = (self:chance(0.9) and "0" or self:pick { "000", "0;ext", "0 " }) .. self:eol()
  if self:chance(0.2) then t[#t + 1] = "X-Trailer: t" .. self:eol() end
  if self:defect(0.05) then t[#t + 1] = self:pick(BAD_HEADERS) .. self:eol() end
  if not self:defect(0.05) then t[#t + 1] = self:eol() end
end

--- Returns the response bytes and the request method ("GET" or "HEAD").
function G:response()
  local t = {}
  self.clean = self:chance(0.4)
  self.lf_only = self:chance(0.05)
  while self:chance(0.1) do -- interim responses
    t[#t + 1] = self:status_line(self.clean and 100 or self:pick(INTERIM))
    self:headers(t)
    t[#t + 1] = self:eol()
  end
  local code = self:chance(0.7) and 200 or self:pick(FINAL)
  if self.clean and (code == 101 or code < 100 or code > 599) then code = 200 end
  t[#t + 1] = self:status_line(code)
  self:headers(t)
  local body = self:chance(0.1) and self:bytes(self:int(0, 60)) or self:text(self:int(0, 120))
  if self:chance(0.05) then body = self:text(self:int(250, 400)) end -- beyond max_body
  local framing = self:int(1, 10)
  if self.clean and framing == 10 then framing = 1 end
  local te = framing <= 4 or framing == 10
  if te then
    local n = self:chance(0.1) and 2 or 1
    for _ = 1, n do
      t[#t + 1] = "Transfer-Encoding: " .. (self:defect(0.3) and self:pick(TE_VALUES) or "chunked") .. self:eol()
    end
  end
  if (framing >= 5 and framing <= 8) or framing == 10 then
    local n = self:chance(0.1) and 2 or 1
    if te then n = 1 end
    for _ = 1, n do t[#t + 1] = "Content-Length: " .. self:content_length(#body) .. self:eol() end
  end
  self:headers(t)
  t[#t + 1] = self:eol()
  if te then self:chunked_body(t, body) else t[#t + 1] = body end
  local s = table.concat(t)
  if self:defect(0.1) then s = s:sub(1, self:int(0, #s)) end -- cut short
  if self:chance(0.05) then s = s .. self:text(self:int(1, 20)) end -- trailing bytes
  return s, self:chance(0.1) and "HEAD" or "GET"
end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

--- What a transport made of a response: its framing, or the failure's class.
function M.outcome(res, err)
  if not res then return { ok = false, reason = err.reason, detail = err.detail or err.message } end
  local headers = {}
  for k, v in pairs(res.headers) do
    headers[k] = type(v) == "table" and table.concat(v, "\n") or v -- a list stays in order
  end
  return { ok = true, status = res.status, version = res.http_version, headers = headers, body = hex(res.body) }
end

return M

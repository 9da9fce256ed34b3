--- Small helpers shared by the emulator modules: exact JSON encoding, query
-- parsing, a seeded random source. The emulator runs under Lua 5.4 only.
local cjson = require "cjson.safe"
local url = require "wxhw.url"

local M = {}

M.null = cjson.null
M.ARRAY = { __name = "json array" }

--- Mark a table so that it encodes as a JSON array even when empty.
function M.array(t) return setmetatable(t or {}, M.ARRAY) end

local cjson_encode = cjson.encode
-- cjson escapes "/" as "\/": valid, but paths (links.next) read better plain.
local function encode_string(s)
  s = cjson_encode(s)
  if s:find("\\/", 1, true) then s = s:gsub("\\/", "/") end
  return s
end
local fmt, concat, mtype, floor, tostr = string.format, table.concat, math.type, math.floor, tostring
local type, pairs, getmetatable = type, pairs, getmetatable
local NULL, ARRAY = cjson.null, M.ARRAY

-- Object keys repeat (errcode, errmsg, ...): '"key":' is cached.
local key_cache, key_count = {}, 0

-- cjson prints numbers with 14 significant digits; product ids and other
-- large integers must go out exactly, so numbers and containers are ours.
local function enc(v, out, n)
  local t = type(v)
  if t == "string" then
    n = n + 1; out[n] = encode_string(v)
  elseif t == "number" then
    n = n + 1
    if mtype(v) == "integer" then out[n] = tostr(v)
    elseif v == floor(v) and v > -2^53 and v < 2^53 then out[n] = fmt("%d", floor(v))
    elseif v ~= v or v == math.huge or v == -math.huge then out[n] = "null"
    else out[n] = fmt("%.17g", v) end
  elseif t == "boolean" then
    n = n + 1; out[n] = v and "true" or "false"
  elseif t == "table" then
    if v == NULL then n = n + 1; out[n] = "null"; return n end
    if getmetatable(v) == ARRAY or (v[1] ~= nil) then
      n = n + 1; out[n] = "["
      for i = 1, #v do
        if i > 1 then n = n + 1; out[n] = "," end
        n = enc(v[i], out, n)
      end
      n = n + 1; out[n] = "]"
    else
      n = n + 1; out[n] = "{"
      local open = n
      for k, x in pairs(v) do
        if n > open then n = n + 1; out[n] = "," end
        local ek = key_cache[k]
        if not ek then
          ek = encode_string(tostr(k)) .. ":"
          if key_count < 4096 then key_cache[k] = ek; key_count = key_count + 1 end
        end
        n = n + 1; out[n] = ek
        n = enc(x, out, n)
      end
      n = n + 1; out[n] = "}"
    end
  else
    n = n + 1; out[n] = "null"
  end
  return n
end

--- WeChat's day number: daily quotas reset at midnight Beijing time (UTC+8).
function M.china_day(t) return math.floor((t + 8 * 3600) / 86400) end

function M.json(v)
  local out = {}
  enc(v, out, 0)
  return concat(out)
end

--- Decode JSON; returns value or nil, err. Numbers that are integral come back
-- as Lua integers so ids compare and print exactly.
local function intify(v)
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(x) == "number" then
        local i = math.tointeger(x)
        if i then v[k] = i end
      elseif type(x) == "table" then intify(x) end
    end
  end
  return v
end

function M.decode(s)
  if type(s) ~= "string" or s == "" then return nil, "empty" end
  local v, err = cjson.decode(s)
  if v == nil then return nil, err end
  if type(v) == "number" then return math.tointeger(v) or v end
  return intify(v)
end


M.urldecode = url.unescape
M.urlencode = url.urlencode
M.parse_query = url.parse_query

--- A seeded random source (xorshift-free: Lua 5.4's xoshiro via its own state
-- is global, so we keep a private generator with a simple 64-bit LCG + mix).
local Rng = {}
Rng.__index = Rng

function M.rng(seed)
  return setmetatable({ s = (seed or 1) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019 }, Rng)
end

function Rng:next()
  -- splitmix64
  self.s = self.s + 0x9E3779B97F4A7C15
  local z = self.s
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end

--- Integer in [lo, hi].
function Rng:int(lo, hi)
  return lo + (self:next() >> 1) % (hi - lo + 1)
end

local ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

local ALNUM_BYTES = { ALNUM:byte(1, -1) }
local char, unpack = string.char, table.unpack

-- Ten base-62 digits per 64-bit draw keeps token generation cheap.
function Rng:alnum(n)
  local t, i = {}, 0
  while i < n do
    local z = self:next() >> 4
    for _ = 1, 10 do
      if i >= n then break end
      i = i + 1
      t[i] = ALNUM_BYTES[z % 62 + 1]
      z = z // 62
    end
  end
  return char(unpack(t))
end

--- n hex digits, 16 per draw: the cheap form for tokens and tickets.
function Rng:token(n)
  local parts = {}
  for i = 1, math.ceil(n / 16) do parts[i] = fmt("%016x", self:next()) end
  return concat(parts):sub(1, n)
end

function Rng:hex(n)
  local t = {}
  for i = 1, n do t[i] = fmt("%x", (self:next() >> 1) % 16) end
  return concat(t)
end

--- Shallow copy.
function M.copy(t)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  return r
end

return M

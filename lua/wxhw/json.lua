--- JSON for wxhw: lua-cjson with integers kept exact both ways. WeChat's
-- ids (product_id, MsgId ...) are 64-bit integers; cjson 2.1.0 reads every
-- number as a double and writes 14 significant digits, so MsgIds a few
-- apart would read as one and be written in exponent form.
--
--   json.decode(s)      --> value | nil, message   integers beyond 2^53 become
--                                                  decimal strings
--   json.encode(v)      --> string   integers from 1e14 on written in full;
--                                    json.bigint("123...") for a decimal string
--   json.id(v)          --> an id (number or string) as its exact decimal text
local cjson = require "cjson"

local M = {}

local codec = cjson.new()
codec.encode_number_precision(14)
codec.encode_sparse_array(true)
M.null = codec.null
-- decoding answers nil, message rather than raising: no pcall per call
local safe_decode = require("cjson.safe").new().decode

-- cjson escapes control characters, so the marker is printable and unguessable.
local BIG_TAG = ("wxhwint%06x%06x"):format(math.random(0, 0xffffff), math.floor(os.clock() * 1e6) % 0xffffff)
local BIG_MARK = BIG_TAG .. ":"
local BIG_PATTERN = '"' .. BIG_TAG .. ':(%-?%d+)"'

M.BigInt = { __tostring = function(self) return self[1] end }

--- Marks a decimal string to be written as a bare JSON integer.
function M.bigint(s)
  s = tostring(s)
  if not s:match("^%-?%d+$") then error("wxhw.json.bigint: not an integer: " .. s, 2) end
  return setmetatable({ s }, M.BigInt)
end

-- Integers cjson 2.1 would print in exponent form are passed as marked strings.
local function prepare(v, seen)
  local t = type(v)
  if t == "number" then
    if v == math.floor(v) and (v >= 1e14 or v <= -1e14) and v > -2 ^ 63 and v < 2 ^ 63 then
      if math.type and math.type(v) == "integer" then return BIG_MARK .. tostring(v) end
      return BIG_MARK .. ("%.0f"):format(v)
    end
    return v
  elseif t ~= "table" then
    return v
  end
  if getmetatable(v) == M.BigInt then return BIG_MARK .. v[1] end
  seen = seen or {}
  if seen[v] then error("wxhw.json: cannot encode a cycle", 3) end
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do out[k] = prepare(x, seen) end
  seen[v] = nil
  return out
end

--- JSON encode with integers beyond 14 digits written exactly.
function M.encode(v)
  local s = codec.encode(prepare(v))
  if s:find(BIG_TAG, 1, true) then s = s:gsub(BIG_PATTERN, "%1") end
  return s
end

-- Integer literals beyond 2^53 are quoted (in C: one pass, no copy when
-- there is none) so cjson keeps every digit; cjson 2.1.0 has no
-- decode_big_numbers_as_strings.
local core_json = require("wxhw.core").json
local quote_big_integers, decode_flat = core_json.quote_big_integers, core_json.decode_flat

--- JSON decode; integers beyond 2^53 become decimal strings so no digit is
-- lost, on Lua 5.4 and LuaJIT alike. nil, message for anything not JSON.
-- A flat object in strict JSON (a push, most API answers) is built in one C
-- pass; anything else goes through cjson, with the same result either way.
function M.decode(s)
  if type(s) ~= "string" then return nil, "JSON text must be a string" end
  local t = decode_flat(s)
  if t then return t end
  return safe_decode(quote_big_integers(s))
end

--- An id as exact decimal text: integral numbers in full (tostring would
-- give 14 significant digits), anything else as tostring.
function M.id(v)
  if type(v) == "string" then return v end -- (a quoted 64-bit MsgId): no tostring, which ends a trace
  if type(v) == "number" and v == math.floor(v) and v > -2 ^ 63 and v < 2 ^ 63 then
    if math.type and math.type(v) == "integer" then return tostring(v) end
    return ("%.0f"):format(v)
  end
  return tostring(v)
end

return M

--- The error value of wxhw: a table with `kind`, `message` and, where they apply,
-- `errcode`, `errmsg`, `http_status`, `retryable`, `request_id`.
-- Expected failures return `nil, err`; programmer misuse raises.
local core = require "wxhw.core"

local Error = core.error_metatable
Error.__index = Error

local M = { Error = Error }

--- Kinds in use: crypto, input, http, wx (WeChat/WeCom errcode), pay, signature,
-- token, quota, callback, state, io, emulator.
function M.new(kind, message, fields)
  if type(kind) ~= "string" then error("errors.new: kind must be a string", 2) end
  local e = { kind = kind, message = message }
  if fields then for k, v in pairs(fields) do e[k] = v end end
  return setmetatable(e, Error)
end

--- Shorthand for `return nil, err`.
function M.fail(kind, message, fields)
  return nil, M.new(kind, message, fields)
end

function M.is(v) return getmetatable(v) == Error end

-- __tostring is the core's (csrc/core.c), so C-made errors print whole too.

function Error:__eq(other) return self.kind == other.kind and self.message == other.message end

-- Length of the UTF-8 sequence a lead byte starts (0: not a lead byte).
local function seq_len(b)
  if b < 0x80 then return 1 elseif b < 0xC2 then return 0 elseif b < 0xE0 then return 2
  elseif b < 0xF0 then return 3 elseif b < 0xF5 then return 4 end
  return 0
end

-- Whether s holds a whole, well-formed UTF-8 sequence of n bytes at i.
local function seq_ok(s, i, n)
  if n == 0 or i + n - 1 > #s then return false end
  local b1, b2 = s:byte(i, i + 1)
  if n >= 2 then -- no overlong form, no surrogate, nothing past U+10FFFF
    if (b1 == 0xE0 and b2 < 0xA0) or (b1 == 0xED and b2 > 0x9F) or (b1 == 0xF0 and b2 < 0x90)
      or (b1 == 0xF4 and b2 > 0x8F) then return false end
  end
  for k = i + 1, i + n - 1 do
    local c = s:byte(k)
    if c < 0x80 or c > 0xBF then return false end
  end
  return true
end

local function continues(b) return b ~= nil and b >= 0x80 and b < 0xC0 end

--- At most `max` bytes of s for a message, never half a UTF-8 character
-- (no utf8 library: LuaJIT has none); "…" marks a cut.
function M.cut(s, max)
  s = tostring(s)
  if #s <= max then return s end
  local i = max + 1 -- the first byte left out: back up while it continues a character
  while i > max - 2 and continues(s:byte(i)) do i = i - 1 end
  return s:sub(1, i - 1) .. "…"
end

--- The character at byte i of s, for a message: the whole UTF-8 character
-- that byte is part of, or \xNN for a control byte or one that is not UTF-8.
function M.char_at(s, i)
  local start = i
  while start > 1 and start > i - 3 and continues(s:byte(start)) do start = start - 1 end
  local b = s:byte(start)
  local n = seq_len(b)
  if b >= 0x20 and b ~= 0x7F and seq_ok(s, start, n) and start + n > i then return s:sub(start, start + n - 1) end
  return ("\\x%02X"):format(s:byte(i))
end

--- Raises the error (for callers that prefer exceptions).
function Error:raise(level) error(self, (level or 1) + 1) end

return M

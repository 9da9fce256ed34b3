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

local order = { "errcode", "errmsg", "http_status", "request_id" }

function Error:__tostring()
  local parts = {}
  for _, k in ipairs(order) do
    if self[k] ~= nil then parts[#parts + 1] = k .. "=" .. tostring(self[k]) end
  end
  if self.retryable then parts[#parts + 1] = "retryable" end
  local s = "wxhw " .. tostring(self.kind) .. " error: " .. tostring(self.message)
  if #parts > 0 then s = s .. " (" .. table.concat(parts, ", ") .. ")" end
  return s
end

function Error:__eq(other) return self.kind == other.kind and self.message == other.message end

--- Raises the error (for callers that prefer exceptions).
function Error:raise(level) error(self, (level or 1) + 1) end

return M

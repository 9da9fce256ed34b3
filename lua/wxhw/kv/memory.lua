--- kv store in one Lua state (scripts, tests, one worker). See wxhw.kv.
local monotonic = require("wxhw.clock").monotonic

local M = {}
M.__index = M

--- opts.clock: seconds for expiry (default the monotonic clock).
function M.new(opts)
  return setmetatable({ kind = "memory", shared = false, data = {}, exp = {},
                        clock = opts and opts.clock or monotonic }, M)
end

local function live(self, key)
  local e = self.exp[key]
  if e and e <= self.clock() then self.data[key], self.exp[key] = nil, nil end
  return self.data[key]
end

local function put(self, key, value, ttl)
  self.data[key] = value
  self.exp[key] = (ttl and ttl > 0) and (self.clock() + ttl) or nil
end

function M:get(key) return live(self, key) end
function M:set(key, value, ttl) put(self, key, value, ttl); return true end
function M:add(key, value, ttl)
  if live(self, key) ~= nil then return false end
  put(self, key, value, ttl)
  return true
end
function M:cas(key, old, new, ttl)
  if live(self, key) ~= old then return false end
  if new == nil then self.data[key], self.exp[key] = nil, nil else put(self, key, new, ttl) end
  return true
end
function M:delete(key) self.data[key], self.exp[key] = nil, nil; return true end
function M:keys(prefix)
  local out = {}
  for k in pairs(self.data) do
    if k:sub(1, #prefix) == prefix and live(self, k) ~= nil then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end
function M:__tostring() return "wxhw memory kv store" end

return M

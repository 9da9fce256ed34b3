--- Replay cache: remembers (timestamp, nonce) pairs of verified callbacks for
-- the signature window, so a captured notification sent again is refused.
--
--   local rc = replay.new{ ttl = 600 }                 -- one process
--   local rc = replay.new{ ttl = 600, redis = conn, prefix = "wxhw:replay:1900000001:" }
--   rc:check(key, now) --> true (first time) | false (seen before) | nil, err
--
-- The Redis form (a connection from wxhw.redis.connect) shares
-- the cache between processes and hosts with one atomic SET NX EX.
local M = {}
M.__index = M

--- opts: ttl (s, default 600 = twice the 300 s window: a timestamp may be up
-- to 300 s ahead or behind), redis (connection with :command), prefix, max
-- (entries kept in memory before old ones are swept, default 200000).
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({ ttl = opts.ttl or 600, redis = opts.redis, prefix = opts.prefix or "wxhw:replay:",
    max = opts.max or 200000, entries = {}, n = 0 }, M)
  if self.redis and type(self.redis.command) ~= "function" then error("replay.new: redis must have :command()", 2) end
  return self
end

local function sweep(self, now)
  local n = 0
  for k, exp in pairs(self.entries) do
    if exp <= now then self.entries[k] = nil else n = n + 1 end
  end
  self.n = n
end

--- Records `key`; true if it was new, false if it is a replay.
function M:check(key, now)
  if self.redis then
    local res, err = self.redis:command("SET", self.prefix .. key, "1", "NX", "EX", tostring(math.ceil(self.ttl)))
    if res == nil and err then return nil, err end
    return res ~= nil and res ~= false
  end
  local exp = self.entries[key]
  if exp and exp > now then return false end
  if not exp then
    self.n = self.n + 1
    if self.n > self.max then sweep(self, now) end
  end
  self.entries[key] = now + self.ttl
  return true
end

return M

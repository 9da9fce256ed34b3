--- Token store kept in one Lua state (a script, one nginx worker, tests).
-- Same interface as the shared stores (see docs/tokens.md, "Store interface"),
-- so the manager has one code path; leases still matter between coroutines.
local monotonic = require("wxhw.clock").monotonic

local M = {}
M.__index = M

function M.new()
  return setmetatable({ kind = "memory", shared = false, recs = {}, leases = {}, forces = {}, next_id = 1 }, M)
end

local function rec_of(self, key)
  local r = self.recs[key]
  if not r then
    r = { token = false, expires_at = 0, fetched_at = 0, gen = 0 }
    self.recs[key] = r
  end
  return r
end

function M:get(key)
  local r = rec_of(self, key)
  return { token = r.token, expires_at = r.expires_at, fetched_at = r.fetched_at, gen = r.gen }
end

--- A function returning the record's generation (the cache-hit check).
function M:peeker(key)
  local r = rec_of(self, key) -- records are never replaced, only updated
  return function() return r.gen end
end

--- The live record itself: the manager reads `.gen` with no call at all.
function M:watch(key) return rec_of(self, key) end

function M:lease(key, ttl)
  local l, now = self.leases[key], monotonic()
  if l and l.deadline > now then return false, "this process", l.deadline - now end
  local id = self.next_id
  self.next_id = id + 1
  self.leases[key] = { id = id, deadline = now + ttl }
  return id
end

function M:release(key, lease)
  local l = self.leases[key]
  if l and l.id == lease then self.leases[key] = nil; return true end
  return false
end

function M:commit(key, lease, token, expires_at, fetched_at)
  local l = self.leases[key]
  if lease and l and l.id ~= lease and l.deadline > monotonic() then return false, "lease lost" end
  if lease and l and l.id == lease then self.leases[key] = nil end
  local r = rec_of(self, key)
  r.token, r.expires_at, r.fetched_at, r.gen = token, expires_at, fetched_at, r.gen + 1
  return r.gen
end

function M:invalidate(key, failed)
  local r = self.recs[key]
  if r and r.token and r.token == failed then
    r.token, r.expires_at, r.gen = false, 0, r.gen + 1
    return true
  end
  return false
end

function M:force_permit(key, now, day, per_day, spacing)
  local f = self.forces[key]
  if not f or f.day ~= day then f = { day = day, count = 0, last = f and f.last or 0 }; self.forces[key] = f end
  if f.count >= per_day then return false, "daily", 0 end
  if f.last > 0 and now - f.last < spacing then return false, "spacing", spacing - (now - f.last) end
  f.count, f.last = f.count + 1, now
  return true
end

function M:__tostring() return "wxhw memory token store" end

return M

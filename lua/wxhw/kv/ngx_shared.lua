--- kv store in an OpenResty lua_shared_dict (all nginx workers). See wxhw.kv.
local clock = require "wxhw.clock"
local errors = require "wxhw.errors"

local M = {}
M.__index = M

--- dict: an ngx.shared.DICT (or its name).
function M.new(dict)
  if type(dict) == "string" then dict = clock.shared_dict(dict) end
  if not dict then error("store.ngx_shared: unknown lua_shared_dict", 2) end
  return setmetatable({ kind = "ngx_shared", shared = true, dict = dict }, M)
end

local function fail(op, err)
  return nil, errors.new("store", "shared dict " .. op .. " failed: " .. tostring(err))
end

function M:get(key) return self.dict:get(key) end
-- safe_set/safe_add: a full dict refuses (nil, "no memory") rather than
-- evict the least recently used entries, which may be a live call's session
-- or device lock (a second call would then be admitted); expired entries
-- are still reclaimed.
function M:set(key, value, ttl)
  local ok, err = self.dict:safe_set(key, value, ttl or 0)
  if not ok then return fail("set", err) end
  return true
end
function M:add(key, value, ttl)
  local ok, err = self.dict:safe_add(key, value, ttl or 0)
  if ok then return true end
  if err == "exists" then return false end
  return fail("add", err)
end
-- Shared dicts have no compare-and-set; a short lock key makes it atomic
-- across workers (each dict call is atomic, Lua between them is not). The
-- lock is held without yielding, so only a worker that died holding it keeps
-- it, for its 1 s expiry; past that wait the swap fails rather than go ahead
-- unlocked.
function M:cas(key, old, new, ttl)
  local lock = "\0lock:" .. key
  local locked, err = self.dict:safe_add(lock, 1, 1)
  if not locked and err == "exists" then
    local deadline = clock.monotonic() + 1.5
    repeat
      clock.sleep(0.001)
      locked, err = self.dict:safe_add(lock, 1, 1)
    until locked or err ~= "exists" or clock.monotonic() > deadline
    if err == "exists" then return fail("cas", "'" .. key .. "' stayed locked past its expiry") end
  end
  if not locked then return fail("cas", err) end
  local ok = self.dict:get(key) == old
  if ok then
    if new == nil then
      self.dict:delete(key)
    else
      local stored, serr = self.dict:safe_set(key, new, ttl or 0)
      if not stored then ok, err = nil, serr end
    end
  end
  self.dict:delete(lock)
  if ok == nil then return fail("cas", err) end
  return ok
end
function M:delete(key) self.dict:delete(key); return true end
function M:keys(prefix)
  local out = {}
  for _, k in ipairs(self.dict:get_keys(0)) do
    if k:sub(1, #prefix) == prefix then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end
function M:__tostring() return "wxhw ngx.shared kv store" end

return M

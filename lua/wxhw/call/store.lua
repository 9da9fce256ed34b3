--- Small key/value stores for call sessions, authorisations and callback
-- de-duplication. The token stores (wxhw.store.*) hold token records only
-- (lease/commit/invalidate), so this is the narrow interface the call layer
-- needs, with three backends:
--
--   store.memory()             one Lua state (scripts, tests, one worker)
--   store.redis(opts | conn)   many hosts; reuses the token store's hiredis
--                              connection (wxhw.core.tokenstore.redis_connect)
--   store.ngx_shared(dict)     OpenResty lua_shared_dict (all nginx workers)
--   store.shm{ path =, entries =, value_bytes = }
--                              a hash table in a file mapping shared by the
--                              processes of one host (wxhw.core.kvshm): nginx
--                              workers without a lua_shared_dict, 1-2 cache
--                              misses an operation (docs/callback.md)
--
-- Interface (values are strings; ttl in seconds, nil/0 = no expiry):
--   s:get(key)                    --> value | nil            (nil, err on failure)
--   s:set(key, value, ttl)        --> true
--   s:add(key, value, ttl)        --> true | false (key exists)   atomic
--   s:cas(key, old, new, ttl)     --> true | false (value was not `old`) atomic
--   s:delete(key)                 --> true
--   s:keys(prefix)                --> { key, ... }
local errors = require "wxhw.errors"

local M = {}
local unpack = table.unpack or unpack -- luacheck: ignore

-- memory ----------------------------------------------------------------

local Memory = {}
Memory.__index = Memory

local function mono() return require("wxhw.clock").monotonic() end

function M.memory(opts)
  return setmetatable({ kind = "memory", shared = false, data = {}, exp = {},
                        clock = opts and opts.clock or mono }, Memory)
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

function Memory:get(key) return live(self, key) end
function Memory:set(key, value, ttl) put(self, key, value, ttl); return true end
function Memory:add(key, value, ttl)
  if live(self, key) ~= nil then return false end
  put(self, key, value, ttl)
  return true
end
function Memory:cas(key, old, new, ttl)
  if live(self, key) ~= old then return false end
  if new == nil then self.data[key], self.exp[key] = nil, nil else put(self, key, new, ttl) end
  return true
end
function Memory:delete(key) self.data[key], self.exp[key] = nil, nil; return true end
function Memory:keys(prefix)
  local out = {}
  for k in pairs(self.data) do
    if k:sub(1, #prefix) == prefix and live(self, k) ~= nil then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end
function Memory:__tostring() return "wxhw memory kv store" end

-- redis -----------------------------------------------------------------

local Redis = {}
Redis.__index = Redis

local CAS = [[
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] or (ARGV[4] == '1' and not cur) then return 0 end
if ARGV[2] == '' and ARGV[5] == '1' then redis.call('DEL', KEYS[1]) return 1 end
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else redis.call('SET', KEYS[1], ARGV[2]) end
return 1]]

--- opts: { host, port, db, password, timeout } or { conn = existing connection },
-- prefix (default "wxhw:"). Blocking (hiredis): use ngx_shared inside nginx.
function M.redis(opts)
  opts = opts or {}
  local conn, err = require("wxhw.store.redis").connect(opts)
  if not conn then return nil, err end
  local crypto = require "wxhw.crypto"
  return setmetatable({ kind = "redis", shared = true, conn = conn, prefix = opts.prefix or "wxhw:",
                        cas_sha = crypto.hex(crypto.sha1(CAS)) }, Redis)
end

local function ms(ttl) return (ttl and ttl > 0) and math.max(1, math.floor(ttl * 1000)) or 0 end

function Redis:get(key)
  local r, err = self.conn:command("GET", self.prefix .. key)
  if r == nil then return nil, err end
  return r or nil
end
function Redis:set(key, value, ttl)
  local r, err
  if ms(ttl) > 0 then r, err = self.conn:command("SET", self.prefix .. key, value, "PX", ms(ttl))
  else r, err = self.conn:command("SET", self.prefix .. key, value) end
  if r == nil then return nil, err end
  return true
end
function Redis:add(key, value, ttl)
  local r, err
  if ms(ttl) > 0 then r, err = self.conn:command("SET", self.prefix .. key, value, "NX", "PX", ms(ttl))
  else r, err = self.conn:command("SET", self.prefix .. key, value, "NX") end
  if r == nil then return nil, err end
  return r ~= false
end
function Redis:cas(key, old, new, ttl)
  local args = { self.prefix .. key, old or "", new or "", ms(ttl), old ~= nil and "1" or "0", new == nil and "1" or "0" }
  local r, err = self.conn:command("EVALSHA", self.cas_sha, 1, unpack(args))
  if r == nil and err and tostring(err.message):find("NOSCRIPT", 1, true) then
    self.conn:command("SCRIPT", "LOAD", CAS)
    r, err = self.conn:command("EVALSHA", self.cas_sha, 1, unpack(args))
  end
  if r == nil then return nil, err end
  return r == 1
end
function Redis:delete(key)
  local r, err = self.conn:command("DEL", self.prefix .. key)
  if r == nil then return nil, err end
  return true
end
function Redis:keys(prefix)
  local out, cursor = {}, "0"
  repeat
    local r, err = self.conn:command("SCAN", cursor, "MATCH", self.prefix .. prefix .. "*", "COUNT", 500)
    if not r then return nil, err end
    cursor = r[1]
    for _, k in ipairs(r[2]) do out[#out + 1] = k:sub(#self.prefix + 1) end
  until cursor == "0"
  table.sort(out)
  return out
end
function Redis:close() self.conn:close() end
function Redis:__tostring() return "wxhw redis kv store" end

-- ngx.shared ------------------------------------------------------------

local Shared = {}
Shared.__index = Shared

--- dict: an ngx.shared.DICT (or its name).
function M.ngx_shared(dict)
  if type(dict) == "string" then dict = ngx.shared[dict] end -- luacheck: ignore ngx
  if not dict then error("store.ngx_shared: unknown lua_shared_dict", 2) end
  return setmetatable({ kind = "ngx_shared", shared = true, dict = dict }, Shared)
end

local function shared_fail(op, err)
  return nil, errors.new("store", "shared dict " .. op .. " failed: " .. tostring(err))
end

function Shared:get(key) return self.dict:get(key) end
-- safe_set/safe_add: a full dict refuses (nil, "no memory") rather than
-- evict the least recently used entries, which may be a live call's session
-- or device lock (a second call would then be admitted); expired entries
-- are still reclaimed.
function Shared:set(key, value, ttl)
  local ok, err = self.dict:safe_set(key, value, ttl or 0)
  if not ok then return shared_fail("set", err) end
  return true
end
function Shared:add(key, value, ttl)
  local ok, err = self.dict:safe_add(key, value, ttl or 0)
  if ok then return true end
  if err == "exists" then return false end
  return shared_fail("add", err)
end
-- Shared dicts have no compare-and-set; a short lock key makes it atomic
-- across workers (each dict call is atomic, Lua between them is not). The
-- lock is held without yielding, so only a worker that died holding it keeps
-- it, for its 1 s expiry; past that wait the swap fails rather than go ahead
-- unlocked.
function Shared:cas(key, old, new, ttl)
  local lock = "\0lock:" .. key
  local locked, err = self.dict:safe_add(lock, 1, 1)
  if not locked and err == "exists" then
    local deadline = ngx.now() + 1.5 -- luacheck: ignore ngx
    repeat
      ngx.sleep(0.001) -- luacheck: ignore ngx
      locked, err = self.dict:safe_add(lock, 1, 1)
    until locked or err ~= "exists" or ngx.now() > deadline -- luacheck: ignore ngx
    if err == "exists" then return shared_fail("cas", "'" .. key .. "' stayed locked past its expiry") end
  end
  if not locked then return shared_fail("cas", err) end
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
  if ok == nil then return shared_fail("cas", err) end
  return ok
end
function Shared:delete(key) self.dict:delete(key); return true end
function Shared:keys(prefix)
  local out = {}
  for _, k in ipairs(self.dict:get_keys(0)) do
    if k:sub(1, #prefix) == prefix then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end
function Shared:__tostring() return "wxhw ngx.shared kv store" end

-- shm (wxhw.core.kvshm) -------------------------------------------------

local Shm = {}
Shm.__index = Shm

--- opts: path (a file, e.g. under /dev/shm; created mode 0600), entries (live
-- keys it must hold), value_bytes (longest value, default 256). Every
-- process opening the same path with the same shape shares the table.
function M.shm(opts)
  if type(opts) ~= "table" or type(opts.path) ~= "string" or not opts.entries then
    error("store.shm: opts.path and opts.entries are required", 2)
  end
  local t, err = require("wxhw.core").kvshm.open(opts.path, opts.entries, opts.value_bytes or 256)
  if not t then return nil, err end
  -- get/set/add/cas/delete are the C methods bound to the table (one C call
  -- each); the Lua side only adds sorted keys() and a readable tostring.
  return setmetatable(t:bind{ kind = "shm", shared = true, t = t, path = opts.path }, Shm)
end

function Shm:keys(prefix)
  local out = self.t:keys(prefix or "")
  table.sort(out)
  return out
end
function Shm:stats() return self.t:stats() end
function Shm:close() self.t:close() end
function Shm:__tostring() return "wxhw shm kv store (" .. tostring(self.t) .. ")" end

return M

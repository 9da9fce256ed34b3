--- kv store for many hosts, on the one wxhw.redis connection (hiredis;
-- cosockets inside nginx). See wxhw.kv.
local redis = require "wxhw.redis"

local M = {}
M.__index = M

local cas = redis.script [[
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] or (ARGV[4] == '1' and not cur) then return 0 end
if ARGV[2] == '' and ARGV[5] == '1' then redis.call('DEL', KEYS[1]) return 1 end
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else redis.call('SET', KEYS[1], ARGV[2]) end
return 1]]

--- opts: { host, port, db, password, timeout } or { conn = existing connection },
-- prefix (default "wxhw:").
function M.new(opts)
  opts = opts or {}
  local conn, err = redis.connect(opts)
  if not conn then return nil, err end
  return setmetatable({ kind = "redis", shared = true, conn = conn, prefix = opts.prefix or "wxhw:" }, M)
end

local function ms(ttl) return (ttl and ttl > 0) and math.max(1, math.floor(ttl * 1000)) or 0 end

function M:get(key)
  local r, err = self.conn:command("GET", self.prefix .. key)
  if r == nil then return nil, err end
  return r or nil
end
function M:set(key, value, ttl)
  local r, err
  if ms(ttl) > 0 then r, err = self.conn:command("SET", self.prefix .. key, value, "PX", ms(ttl))
  else r, err = self.conn:command("SET", self.prefix .. key, value) end
  if r == nil then return nil, err end
  return true
end
function M:add(key, value, ttl)
  local r, err
  if ms(ttl) > 0 then r, err = self.conn:command("SET", self.prefix .. key, value, "NX", "PX", ms(ttl))
  else r, err = self.conn:command("SET", self.prefix .. key, value, "NX") end
  if r == nil then return nil, err end
  return r ~= false
end
function M:cas(key, old, new, ttl)
  local r, err = cas(self.conn, 1, self.prefix .. key, old or "", new or "", ms(ttl),
                     old ~= nil and "1" or "0", new == nil and "1" or "0")
  if r == nil then return nil, err end
  return r == 1
end
function M:delete(key)
  local r, err = self.conn:command("DEL", self.prefix .. key)
  if r == nil then return nil, err end
  return true
end
function M:keys(prefix)
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
function M:close() self.conn:close() end
function M:__tostring() return "wxhw redis kv store" end

return M

--- Token store for many hosts: Redis over the one wxhw.redis connection
-- (hiredis, csrc/store/redis.c; cosockets inside nginx).
-- Every multi-step change runs as one server-side script (EVALSHA), so
-- compare-and-invalidate, lease checks and commits are atomic across hosts.
--
-- Layout per token key K (readable by other programs, nothing JSON-quoted):
--   K        hash  access_token, expires_at, fetched_at (manager clock, s), gen,
--                  leased (owner id of the last lease granted: it outlives the
--                  lease, so a holder whose lease was taken over cannot commit
--                  its older token over the newer holder's, even once that one is done)
--   K:lease  string owner id, PX = lease ttl (refresh lease)
--   K:force  hash  day, count, last (explicit force refreshes)
local crypto = require "wxhw.crypto"
local owner = require "wxhw.owner"
local redis = require "wxhw.redis"

local M = {}
M.__index = M

local scripts = {
  lease = [[
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('HSET', KEYS[2], 'leased', ARGV[1])
  if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], 86400) end
  return {1}
end
return {0, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[1]) or ''}]],
  -- the holder ARGV[1] is known dead: its lease passes to ARGV[2]
  takeover = [[
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('HSET', KEYS[2], 'leased', ARGV[2])
return 1]],
  commit = [[
local holder = redis.call('GET', KEYS[2])
if ARGV[1] ~= '' then
  if holder and holder ~= ARGV[1] then return false end
  local last = redis.call('HGET', KEYS[1], 'leased')
  if last and last ~= ARGV[1] then return false end
end
if holder and holder == ARGV[1] then redis.call('DEL', KEYS[2]) end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'access_token', ARGV[2], 'expires_at', ARGV[3], 'fetched_at', ARGV[4])
if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
return gen]],
  release = [[
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0]],
  invalidate = [[
if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'access_token')
  redis.call('HSET', KEYS[1], 'expires_at', 0)
  redis.call('HINCRBY', KEYS[1], 'gen', 1)
  return 1
end
return 0]],
  force = [[
local now, day, per_day, spacing = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'day', 'count', 'last')
local count, last = tonumber(f[2]) or 0, tonumber(f[3]) or 0
if f[1] ~= day then count = 0 end
if count >= per_day then return {0, 'daily', '0'} end
if last > 0 and now - last < spacing then return {0, 'spacing', tostring(spacing - (now - last))} end
redis.call('HSET', KEYS[1], 'day', day, 'count', count + 1, 'last', ARGV[1])
redis.call('EXPIRE', KEYS[1], 172800)
return {1}]],
}

local run = {}
for name, src in pairs(scripts) do run[name] = redis.script(src) end

-- Lease ids are "<owner id> <seq> <nonce>": the owner id (wxhw.owner: boot
-- id, pid, start time) lets a waiter on the same host tell a killed holder
-- from a slow one, as the shm store does, instead of waiting out the ttl.
local seq = 0
local function lease_id()
  seq = seq + 1
  return string.format("%s %d %s", owner.id(), seq, crypto.nonce(12))
end

local function owner_of(id) return tostring(id):match("^(%S+) %d+ %S+$") end

local function who(id)
  local pid = tostring(owner_of(id)):match("^[%x%-]+/(%d+)/%d+$")
  return pid and "pid " .. pid or "another host"
end

--- The connection every Redis-backed part of wxhw uses, now wxhw.redis
-- (kept here for callers of wxhw.store.redis.connect).
M.connect = redis.connect

--- opts: host, port, db, password, timeout (s), or conn (an existing
-- wxhw.TokenRedis). A down server at creation is an error; later outages
-- come back as kind="store" errors and heal on the next call. Inside nginx
-- the connection is a cosocket one (wxhw.redis), made per call.
function M.new(opts)
  local conn, err = redis.connect(opts)
  if not conn then return nil, err end
  return setmetatable({ kind = "redis", shared = true, spans_hosts = true, conn = conn }, M)
end

-- Commands go through redis.command: a connection that broke while idle
-- (server restart) is reopened and the command sent once more.
local function cmd(self, ...) return redis.command(self.conn, ...) end

local function eval(self, name, nkeys, ...) return run[name](self.conn, nkeys, ...) end

function M:get(key)
  local r, err = cmd(self, "HMGET", key, "access_token", "expires_at", "fetched_at", "gen")
  if not r then return nil, err end
  return { token = r[1] or false, expires_at = tonumber(r[2]) or 0, fetched_at = tonumber(r[3]) or 0,
           gen = tonumber(r[4]) or 0 }
end

-- No cheap generation check across hosts: the manager re-reads (or uses its
-- local_ttl) instead.
function M:peeker() return nil end

function M:lease(key, ttl)
  local id = lease_id()
  local r, err = eval(self, "lease", 2, key .. ":lease", key, id, math.max(1, math.floor(ttl * 1000)))
  if r == nil then return nil, err end
  if r[1] == 1 then return id end
  local holder = r[3]
  if holder and owner.gone(owner_of(holder)) then
    local t, terr = eval(self, "takeover", 2, key .. ":lease", key, holder, id, math.max(1, math.floor(ttl * 1000)))
    if t == nil then return nil, terr end
    if t == 1 then return id end
  end
  return false, who(holder), math.max(0, tonumber(r[2]) or 0) / 1000
end

function M:release(key, lease)
  local r, err = eval(self, "release", 1, key .. ":lease", lease)
  if r == nil then return nil, err end
  return r == 1
end

function M:commit(key, lease, token, expires_at, fetched_at)
  local keep = math.max(0, math.floor(expires_at - fetched_at)) + 3600
  local r, err = eval(self, "commit", 2, key, key .. ":lease", lease or "", token,
                      string.format("%.3f", expires_at), string.format("%.3f", fetched_at), keep)
  if r == nil then return nil, err end
  if r == false then return false, "lease lost" end
  return r
end

function M:invalidate(key, failed)
  local r, err = eval(self, "invalidate", 1, key, failed)
  if r == nil then return nil, err end
  return r == 1
end

function M:force_permit(key, now, day, per_day, spacing)
  local r, err = eval(self, "force", 1, key .. ":force", string.format("%.3f", now), day, per_day, spacing)
  if r == nil then return nil, err end
  if r[1] == 1 then return true end
  return false, r[2], tonumber(r[3]) or 0
end

function M:info(key)
  local rec, err = self:get(key)
  if not rec then return nil, err end
  local left = cmd(self, "PTTL", key .. ":lease")
  return { key = key, expires_at = rec.expires_at, fetched_at = rec.fetched_at, gen = rec.gen,
           has_token = rec.token and true or false,
           lease_left = (tonumber(left) or -1) > 0 and left / 1000 or 0 }
end

function M:close() self.conn:close() end
function M:__tostring() return tostring(self.conn) end

M.scripts = scripts
return M

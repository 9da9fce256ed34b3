--- Token store in an nginx `lua_shared_dict`: shared by the workers of one
-- nginx, non-blocking (no locks held across yields), no server.
--
--   lua_shared_dict wxhw_tokens 1m;     # the default dict name
--
-- Writes use safe_set/safe_add: a full dict refuses (the manager then
-- treats the store as down) instead of evicting another key's lease or mark.
--
-- Layout per token key K:
--   K          "expires_at|fetched_at|token"
--   K#gen      generation, bumped on every change (the workers' cache check)
--   K#lease    refresh lease owner ("<wxhw.owner id> <seq>"), with the lease ttl as exptime
--   K#bad      the token last invalidated (compare-and-invalidate without a
--              lock: a record holding it reads as empty)
--   K#fday:D   forced refreshes on China day D;  K#fspace  spacing marker
--
-- Layered over Redis (`redis = { host =, port =, ... }`) for several nginx
-- hosts: leases, commits, compare-and-invalidate and the force budget go to
-- Redis (the same server-side scripts as the redis store, over cosockets);
-- the dict keeps each record for `l1_ttl` seconds (default 1) as `K#l2`, so
-- the workers of a host share one Redis read. A 40001 drops the host's copy
-- and keeps the failed token out of it for 2 x l1_ttl.
local M = {}
M.__index = M
local Layered = setmetatable({}, { __index = M })
Layered.__index = Layered

local clock = require "wxhw.clock"
local errors = require "wxhw.errors"
local owner = require "wxhw.owner"
local seq = 0

--- opts: dict (name, default "wxhw_tokens").
function M.new(opts)
  opts = opts or {}
  if not clock.in_nginx() then error("wxhw.store.ngx_shared: only inside nginx (lua-nginx-module)", 2) end
  local name = opts.dict or "wxhw_tokens"
  local dict = clock.shared_dict(name)
  if not dict then
    return errors.fail("store", "no lua_shared_dict named " .. name
      .. " (add `lua_shared_dict " .. name .. " 1m;` to the http block)")
  end
  local self = setmetatable({ kind = "ngx_shared", shared = true, dict = dict, name = name }, M)
  if opts.redis then
    -- inside nginx wxhw.redis connects over cosockets
    self.l2 = assert(require("wxhw.token.store.redis").new(opts.redis))
    self.l1_ttl = opts.l1_ttl or 1
    self.spans_hosts = true
    return setmetatable(self, Layered)
  end
  return self
end

local function fail(msg)
  return errors.fail("store", "lua_shared_dict: " .. tostring(msg))
end

-- Other workers write while we read, key by key, so the order matters: the
-- generation first (a record is never older than its generation, else a
-- manager would trust a replaced token until the next change), then the
-- #bad mark, then the record (commit writes the record before clearing the
-- mark, so a mark read as cleared means the record is already the new one).
function M:get(key)
  local d = self.dict
  local gen = d:get(key .. "#gen") or 0
  local bad = d:get(key .. "#bad")
  local v = d:get(key)
  if not v then return { token = false, expires_at = 0, fetched_at = 0, gen = gen } end
  local exp, fetched, tok = v:match("^([^|]*)|([^|]*)|(.*)$")
  if tok == bad then tok = false end
  return { token = tok or false, expires_at = tonumber(exp) or 0, fetched_at = tonumber(fetched) or 0, gen = gen }
end

function M:peeker(key)
  local d, k = self.dict, key .. "#gen"
  d:add(k, 0)
  return function() return d:get(k) end
end

-- Lease ids are "<owner id> <seq>" (wxhw.owner: boot id, pid, start time):
-- a worker killed (-9) while it held the lease is recognised as gone and one
-- waiter takes its lease over at once (the marker K#lease#took:<id> is added
-- once per dead holder), as the shm and redis stores do, instead of every
-- worker waiting out the lease ttl (30 s) without a token.
function M:lease(key, ttl)
  seq = seq + 1
  local d, lk = self.dict, key .. "#lease"
  local id = owner.id() .. " " .. seq
  local ok, err = d:safe_add(lk, id, ttl)
  if ok then return id end
  if err ~= "exists" then return fail(err) end
  local cur = d:get(lk)
  local who = cur and tostring(cur):match("^(%S+) %d+$")
  if who and owner.gone(who) and d:safe_add(lk .. "#took:" .. cur, true, ttl) then
    local sok, serr = d:safe_set(lk, id, ttl)
    if not sok then return fail(serr) end
    return id
  end
  local left = d.ttl and d:ttl(lk)
  return false, "nginx worker " .. (tostring(who):match("/(%d+)/") or "?"), left
end

function M:release(key, lease)
  if self.dict:get(key .. "#lease") == lease then
    self.dict:delete(key .. "#lease")
    return true
  end
  return false
end

function M:commit(key, lease, token, expires_at, fetched_at)
  local d = self.dict
  local holder = d:get(key .. "#lease")
  if lease and holder and holder ~= lease then return false, "lease lost" end
  local ok, err = d:safe_set(key, string.format("%.3f|%.3f|%s", expires_at, fetched_at, token))
  if not ok then return fail(err) end
  -- only now: cleared before the new record, the invalidated one would read as valid
  d:delete(key .. "#bad")
  if holder and holder == lease then d:delete(key .. "#lease") end
  return (d:incr(key .. "#gen", 1, 0))
end

function M:invalidate(key, failed)
  local d = self.dict
  local v = d:get(key)
  local tok = v and v:match("^[^|]*|[^|]*|(.*)$")
  if tok ~= failed or d:get(key .. "#bad") == failed then return false end
  local ok, err = d:safe_set(key .. "#bad", failed)
  if not ok then return fail(err) end
  d:incr(key .. "#gen", 1, 0)
  return true
end

-- Spacing and the daily count use nginx's clock and key expiry.
function M:force_permit(key, _, day, per_day, spacing)
  local d = self.dict
  local ok, err = d:safe_add(key .. "#fspace", 1, spacing)
  if not ok then
    if err ~= "exists" then return fail(err) end
    local left = d.ttl and d:ttl(key .. "#fspace") or spacing
    return false, "spacing", left
  end
  local n = d:incr(key .. "#fday:" .. day, 1, 0, 2 * 86400)
  if n and n > per_day then return false, "daily", 0 end
  return true
end

function M:info(key)
  local r = self:get(key)
  return { key = key, expires_at = r.expires_at, fetched_at = r.fetched_at, gen = r.gen,
           has_token = r.token and true or false }
end

function M:__tostring() return "wxhw ngx_shared token store " .. self.name end

-------------------------------------------------------------- over Redis

local function encode(r)
  return string.format("%d|%.3f|%.3f|%s", r.gen, r.expires_at, r.fetched_at, r.token or "")
end

-- `fresh` (the manager's re-check under a lease) skips the host copy.
function Layered:get(key, fresh)
  local v = not fresh and self.dict:get(key .. "#l2")
  if v then
    local gen, exp, fetched, tok = v:match("^([^|]*)|([^|]*)|([^|]*)|(.*)$")
    -- A worker may have re-shared a token another worker just saw fail.
    if tok ~= self.dict:get(key .. "#bad") then
      return { token = tok ~= "" and tok or false, expires_at = tonumber(exp), fetched_at = tonumber(fetched),
               gen = tonumber(gen) }
    end
  end
  local r, err = self.l2:get(key)
  if not r then return nil, err end
  if r.token and r.token == self.dict:get(key .. "#bad") then
    r.token = false -- failed here; the worker invalidating it in Redis is not done yet
  elseif r.token then
    -- Only a token is worth sharing; a missing one must be re-read while
    -- another host fetches it.
    self.dict:safe_set(key .. "#l2", encode(r), self.l1_ttl) -- a cache: when full, not kept
  end
  return r
end

function Layered:peeker() return nil end
function Layered:lease(key, ttl) return self.l2:lease(key, ttl) end
function Layered:release(key, lease) return self.l2:release(key, lease) end
function Layered:force_permit(...) return self.l2:force_permit(...) end

function Layered:commit(key, lease, token, expires_at, fetched_at)
  local gen, err = self.l2:commit(key, lease, token, expires_at, fetched_at)
  if gen then
    self.dict:safe_set(key .. "#l2", encode{ gen = gen, token = token, expires_at = expires_at, fetched_at = fetched_at },
                  self.l1_ttl)
  end
  return gen, err
end

function Layered:invalidate(key, failed)
  self.dict:safe_set(key .. "#bad", failed, 2 * self.l1_ttl)
  self.dict:delete(key .. "#l2")
  return self.l2:invalidate(key, failed)
end

function Layered:info(key) return self.l2:info(key) end

function Layered:__tostring() return "wxhw ngx_shared token store " .. self.name .. " over " .. tostring(self.l2) end

return M

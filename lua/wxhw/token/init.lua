--- Access-token manager: one upstream fetch per rotation across every process
-- and host sharing a store. See docs/tokens.md.
--
--   local mgr = wxhw.token.new{ source = "stable_token", appid = ..., secret = ...,
--                               store = "shm", refresh_ahead = 300 }
--   mgr:token()            --> token | nil, err
--   mgr:invalidate(failed) --> true if the stored token was `failed` and is gone
--   mgr:force_refresh()    --> token | nil, err   (explicit; 20/day, 30 s apart)
--
-- Single-flight: whoever takes the store's refresh lease fetches; the others
-- keep serving the old token while it is valid, or wait (bounded) for the new
-- one. Compare-and-invalidate: a 40001 on a token that was already replaced
-- removes nothing. No errcode ever triggers a force refresh.
local clock = require "wxhw.clock"
local errors = require "wxhw.errors"

local monotonic = clock.monotonic

local M = {}

local Manager = {}
Manager.__index = Manager
M.Manager = Manager

local DEFAULTS = {
  refresh_ahead = 300,       -- s before expiry to refresh (the platform's 5-minute overlap)
  lease_ttl = 30,            -- s a refresh lease lasts if its holder vanishes
  wait_timeout = 10,         -- s to wait for another process's refresh
  poll = 0.005,              -- first wait step (s); doubles up to 0.1
  local_ttl = 0,             -- s to trust a token without re-reading a store that has no cheap check (redis)
  store_down_interval = 30,  -- s between upstream fetches per host while the store is down
  store_retry = 1,           -- s to skip a down store before trying it again
  failure_backoff = 2,       -- s to hold a transient fetch error (doubles up to 60)
  config_failure_backoff = 60, -- s to hold an error that retrying cannot fix (bad secret, quota)
  prefix = "wxhw",
}

-- errcodes that retrying cannot fix: bad secret/appid, IP whitelist, frozen, quota.
local CONFIG_ERRCODES = { [40001] = true, [40013] = true, [40125] = true, [40164] = true, [61004] = true,
                          [40243] = true, [40091] = true, [45009] = true, [40002] = true, [41002] = true,
                          [41004] = true, [40056] = true }

local function china_day(t) return math.floor((t + 8 * 3600) / 86400) end

--- Stores by name: memory, shm, redis, ngx_shared. `opts` go to the store's new().
function M.store(kind, opts)
  if type(kind) ~= "string" or not kind:match("^[%w_]+$") then
    error("wxhw.token.store: store kind must be memory, shm, redis or ngx_shared", 2)
  end
  local ok, mod = pcall(require, "wxhw.token.store." .. kind)
  if not ok then error("wxhw.token.store: unknown store '" .. kind .. "'", 2) end
  return mod.new(opts)
end

-- One store object per kind+options, so managers in a process share the
-- mapping / connection.
local shared_stores = {}
local function default_store(opts)
  if clock.shared_dict("wxhw_tokens") then return M.store("ngx_shared", { dict = "wxhw_tokens" }) end
  local path = opts.store_path or require("wxhw.token.store.shm").default_path()
  local s = shared_stores[path]
  if not s then
    local err
    s, err = M.store("shm", { path = path })
    if not s then return nil, err end
    shared_stores[path] = s
  end
  return s
end

local function resolve_store(opts)
  local s = opts.store
  if s == nil or s == "shm" and not opts.store_path then return default_store(opts) end
  if type(s) == "string" then return M.store(s, opts.store_options or { path = opts.store_path }) end
  if type(s) == "table" and s.get and s.lease and s.commit then return s end
  error("wxhw.token.new: store must be 'memory', 'shm', 'redis', 'ngx_shared' or a store object", 3)
end

local function resolve_source(opts)
  local src = opts.source or opts.fetch
  if type(src) == "string" then return require("wxhw.token.source").new(src, opts) end
  if type(src) == "function" then
    if type(opts.key) ~= "string" then error("wxhw.token.new: a fetch function needs a key", 3) end
    return { name = "custom", fetch = function(_, force) return src(force) end }
  end
  if type(src) == "table" and src.fetch then return src end
  error("wxhw.token.new: source must be a source name (token, stable_token, wecom, model_token, "
        .. "device_token), a source object or a fetch function", 3)
end

--- opts: source (+ its credentials: appid, secret, corpid, corpsecret, ...),
-- store, refresh_ahead, read_only, on_token_refresh(info), key / prefix,
-- clock (seconds; default wxhw.clock.time: ngx.time in nginx, else os.time),
-- sleep (default wxhw.clock.sleep: never blocks a worker), lease_ttl, wait_timeout, local_ttl,
-- host_store (the host-local store used while a store spanning hosts is
-- down; default: the default store, shm or the nginx dict).
function M.new(opts)
  if type(opts) ~= "table" then error("wxhw.token.new: options table expected", 2) end
  local self = setmetatable({}, Manager)
  for k, v in pairs(DEFAULTS) do self[k] = v end
  for k in pairs(DEFAULTS) do if opts[k] ~= nil then self[k] = opts[k] end end
  if type(self.refresh_ahead) ~= "number" or self.refresh_ahead < 0 then
    error("wxhw.token.new: refresh_ahead must be a number of seconds >= 0", 2)
  end
  self.read_only = opts.read_only and true or false
  self.host_store = opts.host_store
  self.fetch_interval = opts.fetch_interval -- set on the host-local manager only (see _host_manager)
  self.on_token_refresh = opts.on_token_refresh
  self._clock = opts.clock or clock.time
  self._sleep = opts.sleep or clock.sleep
  self._source = resolve_source(opts)
  local key = opts.key
  if not key then
    if type(self._source.key) ~= "function" then error("wxhw.token.new: this source needs a key", 2) end
    key = self.prefix .. ":" .. self._source:key()
  end
  if type(key) ~= "string" or #key == 0 or #key > 180 then error("wxhw.token.new: key must be 1..180 bytes", 2) end
  self.key = key
  local store, err = resolve_store(opts)
  if not store then return nil, err end
  self._store = store
  self.store_kind = store.kind
  -- The cache-hit path lives in a per-manager closure (self.token shadows
  -- Manager.token) over upvalues: a clock read, one generation load from the
  -- store (an atomic load for shm) and two compares.
  local watched = store.watch and store:watch(key)
  local peek = not watched and store:peeker(key)
  local now_s, acquire = self._clock, Manager._acquire
  local hit_token, hit_gen, refresh_at, local_until = nil, nil, -math.huge, -math.huge
  if watched then
    self.token = function()
      if now_s() < refresh_at and watched.gen == hit_gen then return hit_token end
      return acquire(self, false)
    end
  elseif peek then
    self.token = function()
      if now_s() < refresh_at and peek() == hit_gen then return hit_token end
      return acquire(self, false)
    end
  else
    self.token = function()
      local now = now_s()
      if now < refresh_at and now < local_until then return hit_token end
      return acquire(self, false)
    end
  end
  self._set_hit = function(tok, gen, r_at, l_until)
    hit_token, hit_gen, refresh_at, local_until = tok, gen, r_at, l_until
  end
  return self
end

--- The current token (token | nil, err). Cache hit: one clock read and one
-- generation compare; see M.new.
function Manager:token()
  return self:_acquire(false)
end

function Manager:_remember(rec, now)
  local c = { token = rec.token, gen = rec.gen, expires_at = rec.expires_at, fetched_at = rec.fetched_at,
              refresh_at = rec.expires_at - self.refresh_ahead, local_until = now + self.local_ttl }
  self._cache = c
  self._set_hit(c.token, c.gen, c.refresh_at, c.local_until)
end

function Manager:_forget()
  self._cache = nil
  self._set_hit(nil, nil, -math.huge, -math.huge)
end

function Manager:_hook(info)
  local h = self.on_token_refresh
  if not h then return end
  info.key, info.source, info.store = self.key, self._source.name, self._store.kind
  local ok, err = pcall(h, info)
  if not ok then io.stderr:write("wxhw.token: on_token_refresh hook failed: ", tostring(err), "\n") end
end

local function reason_of(old, now)
  if not old or (old.gen or 0) == 0 then return "missing" end
  if not old.token then return "invalidated" end
  if now >= old.expires_at then return "expired" end
  return "ahead"
end

function Manager:_note_failure(err)
  local n = (self._fail_n or 0) + 1
  self._fail_n = n
  local hold
  if errors.is(err) and err.errcode and CONFIG_ERRCODES[err.errcode] then hold = self.config_failure_backoff
  else hold = math.min(60, self.failure_backoff * 2 ^ (n - 1)) end
  self._fail_until, self._fail_err = monotonic() + hold, err
end

-- Fetch with the lease held, commit, release. `old` is the record we replace.
function Manager:_refresh(lease, old, now, force)
  local store, key = self._store, self.key
  local t0 = monotonic()
  local ok, tok, res = pcall(self._source.fetch, self._source, force)
  local latency = monotonic() - t0
  if not ok then
    store:release(key, lease)
    error(tok, 0)
  end
  if not tok then
    store:release(key, lease)
    self:_note_failure(res)
    self:_hook{ ok = false, error = res, reason = force and "force" or reason_of(old, now), latency = latency }
    if not force and old and old.token and now < old.expires_at then return old.token end
    return nil, res
  end
  self._fail_n, self._fail_until, self._fail_err = 0, nil, nil
  local expires_in = tonumber(res) or 7200
  local rec = { token = tok, fetched_at = now, expires_at = now + expires_in }
  local gen, cerr = store:commit(key, lease, tok, rec.expires_at, now)
  if gen == nil then
    -- The store failed after we fetched: keep the token locally rather than fetch again.
    self._fallback = rec
    self:_mark_down(cerr)
  elseif gen then
    rec.gen = gen
    self:_remember(rec, now)
  end -- false: another process took the lease over and its token wins; ours still works for this call
  self:_hook{ ok = true, reason = force and "force" or reason_of(old, now), expires_in = expires_in,
              expires_at = rec.expires_at, fetched_at = now, latency = latency }
  return tok
end

function Manager:_mark_down(err)
  self._down_until, self._down_err, self._was_down = monotonic() + self.store_retry, err, true
end

-- While a store that spans hosts (redis) is down, the processes of a host
-- share a manager on the host's own store (shm, or the nginx dict): one
-- upstream fetch per host per store_down_interval, single-flight, instead of
-- one per process, which with the rotating `token` source made every process
-- void the others' tokens. false when the store is host-local already.
function Manager:_host_manager()
  if self._host ~= nil then return self._host end
  self._host = false
  if not self._store.spans_hosts then return false end
  local hs = self.host_store
  if hs == nil then
    local ok, s = pcall(default_store, {})
    hs = ok and s or nil
  end
  if not hs or hs == self._store then return false end
  local key = self.key .. "#down"
  if #key > 180 then
    local crypto = require "wxhw.crypto"
    key = "down#" .. crypto.hex(crypto.sha256(self.key))
  end
  local parent, hook = self, self.on_token_refresh
  local ok, host = pcall(M.new, {
    key = key, source = self._source, store = hs, clock = self._clock, sleep = self._sleep,
    refresh_ahead = self.refresh_ahead, lease_ttl = self.lease_ttl, wait_timeout = self.wait_timeout,
    poll = self.poll, failure_backoff = self.failure_backoff, config_failure_backoff = self.config_failure_backoff,
    fetch_interval = self.store_down_interval,
    on_token_refresh = hook and function(info)
      info.key, info.store, info.reason = parent.key, parent._store.kind, "store_down"
      return hook(info)
    end,
  })
  if ok and host then self._host = host end
  return self._host
end

-- Back from an outage: a token fetched meanwhile (by this process or its
-- host) that is newer than the store's goes into the store instead of being
-- dropped: that fetch may have rotated the store's token away.
function Manager:_adopt(rec, now)
  local mine = self._fallback or (self._host and self._host._cache)
  if self.read_only or not mine or not mine.token or mine.token == rec.token
     or mine.fetched_at <= rec.fetched_at or now >= mine.expires_at - self.refresh_ahead then
    return nil
  end
  local store, key = self._store, self.key
  local lease = store:lease(key, self.lease_ttl)
  if not lease then return nil end
  local fresh = store:get(key, true)
  if not fresh or fresh.fetched_at >= mine.fetched_at then
    store:release(key, lease)
    return nil
  end
  local gen = store:commit(key, lease, mine.token, mine.expires_at, mine.fetched_at)
  if not gen then return nil end
  self:_remember({ token = mine.token, gen = gen, expires_at = mine.expires_at, fetched_at = mine.fetched_at }, now)
  return mine.token
end

-- The host-local manager's answer while the shared store is down.
function Manager:_from_host(host, err)
  local tok, herr = host:token()
  if tok then return tok end
  if errors.is(herr) and herr.down_limited then
    herr.message = "token store unavailable (" .. (errors.is(err) and err.message or tostring(err)) .. "); "
      .. herr.message
  end
  return nil, herr
end

local function store_msg(err) return errors.is(err) and err.message or tostring(err) end

-- The store is unreachable: serve what this process has; fetch directly at
-- most once per store_down_interval so an outage never becomes a stampede.
function Manager:_store_down(err)
  self:_mark_down(err)
  -- What this process last had (from the store or a direct fetch) carries on.
  local now, fb = self._clock(), self._fallback or self._cache
  if fb and now < fb.expires_at - self.refresh_ahead then return fb.token end
  if self.read_only then
    if fb and now < fb.expires_at then return fb.token end
    return errors.fail("store", "token store unavailable (" .. store_msg(err) .. ") and this manager is read-only",
                       { retryable = true })
  end
  local host = self:_host_manager()
  if host then
    local tok, herr = self:_from_host(host, err)
    if tok then return tok end
    if fb and now < fb.expires_at then return fb.token end
    return nil, herr
  end
  local mono = monotonic()
  if self._direct_at and mono - self._direct_at < self.store_down_interval then
    if fb and now < fb.expires_at then return fb.token end
    return errors.fail("store", string.format("token store unavailable (%s); upstream token fetches are limited "
      .. "to one per %g s per process while it is down", store_msg(err), self.store_down_interval),
      { retryable = true })
  end
  self._direct_at = mono
  local ok, tok, res = pcall(self._source.fetch, self._source, false)
  if not ok then error(tok, 0) end
  if not tok then return nil, res end
  local expires_in = tonumber(res) or 7200
  self._fallback = { token = tok, fetched_at = now, expires_at = now + expires_in }
  self:_hook{ ok = true, reason = "store_down", expires_in = expires_in, expires_at = now + expires_in,
              fetched_at = now, latency = monotonic() - mono }
  return tok
end

-- Host-local managers (fetch_interval set) fetch at most once per interval.
function Manager:_too_soon(rec, now)
  return self.fetch_interval and now - rec.fetched_at < self.fetch_interval
end

function Manager:_limited()
  return errors.fail("store", string.format("upstream token fetches are limited to one per %g s per host "
    .. "while it is down", self.fetch_interval), { retryable = true, down_limited = true })
end

function Manager:_acquire(force)
  local store, key, ahead = self._store, self.key, self.refresh_ahead
  if self._down_until then
    if monotonic() < self._down_until then return self:_store_down(self._down_err) end
    self._down_until = nil
  end
  local deadline = monotonic() + self.wait_timeout
  local delay, gen0 = self.poll, nil
  while true do
    local now = self._clock()
    local rec, err = store:get(key)
    if not rec then return self:_store_down(err) end
    if self._was_down then
      self._was_down = nil
      local tok = self:_adopt(rec, now)
      self._fallback = nil
      if tok then return tok end
    end
    if gen0 == nil then gen0 = rec.gen end
    local usable = rec.token and now < rec.expires_at
    if usable and (not force and now < rec.expires_at - ahead or force and rec.gen ~= gen0) then
      self:_remember(rec, now)
      return rec.token
    end
    if self.read_only then
      if usable then return rec.token end
      return errors.fail("token", "read-only token manager: the store has no valid token for " .. key
                         .. " (the central controller has not refreshed it)")
    end
    if self._fail_until and not force then
      if monotonic() < self._fail_until then
        if usable then return rec.token end
        return nil, self._fail_err
      end
    end
    if self:_too_soon(rec, now) then
      if usable then return rec.token end
      return self:_limited()
    end
    local lease, holder, left = store:lease(key, self.lease_ttl)
    if lease == nil then return self:_store_down(holder) end
    if lease then
      -- Re-check under the lease: the previous holder may have committed
      -- between our read and our lease.
      local fresh, ferr = store:get(key, true)
      if not fresh then
        store:release(key, lease)
        return self:_store_down(ferr)
      end
      if fresh.token and now < fresh.expires_at and (not force and now < fresh.expires_at - ahead
                                                     or force and fresh.gen ~= gen0) then
        store:release(key, lease)
        self:_remember(fresh, now)
        return fresh.token
      end
      if self:_too_soon(fresh, now) then
        store:release(key, lease)
        if fresh.token and now < fresh.expires_at then return fresh.token end
        return self:_limited()
      end
      return self:_refresh(lease, fresh, now, force)
    end
    -- Someone else is refreshing: the old token is still good meanwhile.
    if usable and not force then return rec.token end
    if monotonic() >= deadline then
      return errors.fail("token", string.format("timed out after %g s waiting for %s to refresh %s",
        self.wait_timeout, tostring(holder), key), { retryable = true })
    end
    self._sleep(math.max(0.001, math.min(delay, left or delay)))
    delay = math.min(delay * 2, 0.1)
  end
end

--- Compare-and-invalidate: drops the stored token only if it is still
-- `failed`. Returns true if it was removed, false if it had already changed
-- (the next token() then returns the newer one), nil, err if the store failed.
function Manager:invalidate(failed)
  if type(failed) ~= "string" then error("invalidate: the token that failed (a string) is required", 2) end
  local c = self._cache
  if self.fetch_interval and c and c.token == failed and self._clock() - c.fetched_at < self.fetch_interval then
    -- No other token may be fetched before the interval is over: dropping
    -- this one would only turn every call into an error meanwhile.
    return false
  end
  if c and c.token == failed then self:_forget() end
  local fb = self._fallback
  if fb and fb.token == failed then self._fallback = nil end
  if self.read_only then return false end
  if self._down_until and monotonic() < self._down_until then
    if self._host then return self._host:invalidate(failed) end
    return false
  end
  local ok, err = self._store:invalidate(self.key, failed)
  if ok == nil then self:_mark_down(err); return nil, err end
  return ok
end

--- An explicit forced rotation (stable_token force_refresh=true). Never
-- called by the pipeline. Limits are shared through the store: 20 a day
-- (China day) and 30 s apart for stable_token.
function Manager:force_refresh()
  if self.read_only then
    return errors.fail("token", "read-only token manager: force_refresh belongs to the central controller")
  end
  local lim = self._source.force_limits or { per_day = 20, spacing = 30 }
  local now = self._clock()
  local ok, reason, wait = self._store:force_permit(self.key, now, china_day(now), lim.per_day, lim.spacing)
  if ok == nil then return nil, reason end
  if not ok then
    if reason == "daily" then
      return errors.fail("quota", string.format("force_refresh refused: at most %d forced refreshes a day for %s",
                                                lim.per_day, self.key))
    end
    return errors.fail("quota", string.format("force_refresh refused: forced refreshes must be %g s apart; "
      .. "try again in %d s", lim.spacing, math.ceil(wait)), { retry_after = math.ceil(wait) })
  end
  return self:_acquire(true)
end

--- Metadata without the token: key, store, expires_at, fetched_at, gen.
function Manager:info()
  local c = self._cache or self._fallback
  return { key = self.key, store = self._store.kind, source = self._source.name, read_only = self.read_only,
           expires_at = c and c.expires_at, fetched_at = c and c.fetched_at, gen = c and c.gen }
end

function Manager:__tostring()
  local c = self._cache or self._fallback
  local head = "wxhw.token " .. self.key .. " (" .. self._store.kind .. (self.read_only and ", read-only" or "") .. ")"
  if not c then return head .. ": no token yet" end
  local now = self._clock()
  return string.format("%s: expires in %d s (at %s), age %d s", head, math.floor(c.expires_at - now),
                       os.date("!%Y-%m-%d %H:%M:%SZ", math.floor(c.expires_at)), math.floor(now - c.fetched_at))
end

M.DEFAULTS = DEFAULTS
M.china_day = china_day
return M

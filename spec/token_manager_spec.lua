-- The token manager (lua/wxhw/token.lua) over the memory and shm stores with a
-- plain fetch function: single-flight across OS processes, refresh ahead,
-- compare-and-invalidate, read-only, force limits, failure bounding.
local core = require "wxhw.core"
local token = require "wxhw.token"
local errors = require "wxhw.errors"
local procs = require "support.token_procs"

local sleep = core.clock.sleep

local tmp = require("support.files").fresh_path

-- A fetch function with a counter and a settable clock.
local function upstream()
  local u = { n = 0, now = 1.7e9, forced = 0 }
  u.clock = function() return u.now end
  u.fetch = function(force)
    u.n = u.n + 1
    if force then u.forced = u.forced + 1 end
    if u.fail then return nil, u.fail end
    return "TOKEN-" .. u.n, u.expires_in or 7200
  end
  return u
end

local function lines(path)
  local n, f = 0, io.open(path)
  if not f then return 0 end
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

for _, kind in ipairs{ "memory", "shm" } do
  describe("token manager (" .. kind .. " store)", function()
    local path, u, store
    before_each(function()
      path = tmp()
      u = upstream()
      store = token.store(kind, { path = path })
    end)
    after_each(function() os.remove(path) end)

    local function mgr(extra)
      local o = { key = "spec:" .. kind, store = store, fetch = u.fetch, clock = u.clock }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(token.new(o))
    end

    it("fetches once, serves hits, refreshes ahead of expiry", function()
      local m = mgr()
      assert.equal("TOKEN-1", m:token())
      for _ = 1, 100 do assert.equal("TOKEN-1", m:token()) end
      assert.equal(1, u.n)
      u.now = u.now + 7200 - 301
      assert.equal("TOKEN-1", m:token())
      u.now = u.now + 2            -- inside the 300 s window: refresh before expiry
      assert.equal("TOKEN-2", m:token())
      assert.equal(2, u.n)
    end)

    it("compares before invalidating: a 40001 on an old token fetches nothing", function()
      local m, other = mgr(), mgr()
      assert.equal("TOKEN-1", m:token())
      assert.is_true(other:invalidate("TOKEN-1"))
      assert.equal("TOKEN-2", other:token())
      -- m still holds TOKEN-1 as its failed token: the store already moved on
      assert.is_false(m:invalidate("TOKEN-1"))
      assert.equal("TOKEN-2", m:token())
      assert.equal(2, u.n)
      assert.has_error(function() m:invalidate() end)
    end)

    it("sees another manager's new token through the shared generation", function()
      local a, b = mgr(), mgr()
      assert.equal("TOKEN-1", a:token())
      assert.equal("TOKEN-1", b:token())
      b:invalidate("TOKEN-1")
      assert.equal("TOKEN-2", b:token())
      assert.equal("TOKEN-2", a:token())     -- a's cache hit notices the generation change
      assert.equal(2, u.n)
    end)

    it("bounds a failing upstream: one fetch, a clear error, no retry storm", function()
      u.fail = errors.new("wx", "invalid appsecret", { errcode = 40125, errmsg = "invalid appsecret" })
      local m = mgr()
      for _ = 1, 50 do
        local tok, err = m:token()
        assert.is_nil(tok)
        assert.equal(40125, err.errcode)
      end
      assert.equal(1, u.n)
    end)

    it("keeps serving a valid old token when a refresh fails", function()
      local m = mgr()
      assert.equal("TOKEN-1", m:token())
      u.now = u.now + 7000
      u.fail = errors.new("http", "connection refused", { retryable = true })
      assert.equal("TOKEN-1", m:token())
      assert.equal("TOKEN-1", m:token())
      assert.equal(2, u.n)                  -- the failure is held, not retried per call
    end)

    it("read-only managers never fetch", function()
      local ro = mgr({ read_only = true })
      local tok, err = ro:token()
      assert.is_nil(tok)
      assert.equal("token", err.kind)
      assert.matches("read%-only", err.message)
      assert.equal(0, u.n)
      assert.equal("TOKEN-1", mgr():token())  -- the central controller
      assert.equal("TOKEN-1", ro:token())
      assert.is_false(ro:invalidate("TOKEN-1"))
      assert.is_nil((ro:force_refresh()))
      assert.equal(1, u.n)
    end)

    it("force_refresh is explicit and respects 30 s spacing and 20 a day", function()
      local m = mgr()
      assert.equal("TOKEN-1", m:token())
      assert.equal("TOKEN-2", m:force_refresh())
      assert.equal(1, u.forced)
      local tok, err = m:force_refresh()
      assert.is_nil(tok)
      assert.equal("quota", err.kind)
      assert.matches("30 s apart", err.message)
      for _ = 1, 19 do
        u.now = u.now + 31
        assert.truthy(m:force_refresh())
      end
      u.now = u.now + 31
      tok, err = m:force_refresh()
      assert.is_nil(tok)
      assert.matches("20 forced refreshes a day", err.message)
      assert.equal(20, u.forced)
      assert.equal("TOKEN-21", m:token())
    end)

    it("never force-refreshes in answer to invalidate", function()
      local m = mgr()
      m:token()
      m:invalidate("TOKEN-1")
      m:token()
      assert.equal(0, u.forced)
      assert.equal(2, u.n)
    end)

    it("calls on_token_refresh without the token; tostring shows key, expiry, age", function()
      local seen = {}
      local m = mgr({ on_token_refresh = function(info) seen[#seen + 1] = info end })
      assert.matches("no token yet", tostring(m))
      m:token()
      u.now = u.now + 60
      local s = tostring(m)
      assert.matches("spec:" .. kind, s)
      assert.matches("expires in 7140 s", s)
      assert.matches("age 60 s", s)
      assert.not_matches("TOKEN%-1", s)
      assert.equal(1, #seen)
      assert.equal("missing", seen[1].reason)
      assert.equal(7200, seen[1].expires_in)
      for _, v in pairs(seen[1]) do assert.not_matches("TOKEN%-1", tostring(v)) end
      m:invalidate("TOKEN-1")
      m:token()
      assert.equal("invalidated", seen[2].reason)
    end)
  end)
end

describe("token manager keys", function()
  it("include the app id and a hash of the secret under a prefix", function()
    local m = assert(token.new{ source = "stable_token", appid = "wxa1", secret = "s3cret", store = "memory",
                                prefix = "prod" })
    local m2 = assert(token.new{ source = "stable_token", appid = "wxa1", secret = "other", store = "memory",
                                 prefix = "prod" })
    local m3 = assert(token.new{ source = "token", appid = "wxa1", secret = "s3cret", store = "memory" })
    assert.matches("^prod:", m.key)
    assert.matches("wxa1", m.key)
    assert.not_matches("s3cret", m.key)
    assert.not_equal(m.key, m2.key)
    assert.not_equal(m.key:gsub("^prod", "wxhw"), m3.key)
  end)
end)

-- One child process: `calls` token() calls; its clock moves one rotation
-- (7200 s) every `per` calls, like an emulator clock advanced under load.
local CHILD = [[
local token = require "wxhw.token"
local core = require "wxhw.core"
local path, countfile, calls, per = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local k = 0
local pid = core.tokenstore.pid()
local m = assert(token.new{
  key = "spec:rotations", store = "shm", store_path = path,
  clock = function() return 1.7e9 + math.floor(k / per) * 7200 end,
  fetch = function()
    local f = assert(io.open(countfile, "a")); f:write(pid, "\n"); f:close()
    core.clock.sleep(0.05)                       -- a slow upstream widens the race
    return "T-" .. pid .. "-" .. k, 7200
  end,
})
local errs, distinct, last = 0, 0, nil
for i = 1, calls do
  k = i - 1
  local tok, err = m:token()
  if not tok then errs = errs + 1; io.write("ERR ", tostring(err), "\n")
  elseif tok ~= last then distinct, last = distinct + 1, tok end
end
io.write("DONE errors=", errs, " distinct=", distinct, "\n")
]]

describe("token manager across OS processes (shm)", function()
  it("8 processes x 2000 calls across 3 rotations: exactly 3 fetches, no errors", function()
    local path, countfile = tmp(), tmp()
    local ps = {}
    for i = 1, 8 do ps[i] = procs.spawn(CHILD, path, countfile, 2000, 700) end
    for _, p in ipairs(ps) do
      local out = p.wait()
      -- a child that lags (or starts late) may skip rotations others already made
      assert.matches("DONE errors=0 distinct=[123]\n", out)
    end
    assert.equal(3, lines(countfile))
    os.remove(path); os.remove(countfile)
  end)

  it("recovers within the lease deadline when the refreshing process is killed (-9) or hangs", function()
    local path, countfile = tmp(), tmp()
    local holder = [[
      local token = require "wxhw.token"
      local core = require "wxhw.core"
      local m = assert(token.new{ key = "spec:kill", store = "shm", store_path = arg[1], lease_ttl = 1.5,
        fetch = function() io.write("FETCHING\n"); io.stdout:flush(); core.clock.sleep(60) end })
      m:token()
    ]]
    local u = upstream()
    local m = assert(token.new{ key = "spec:kill", store = "shm", store_path = path, fetch = u.fetch,
                                lease_ttl = 1.5, wait_timeout = 5 })
    -- killed: the dead owner's lease is free at once
    local p = procs.spawn(holder, path)
    assert.equal("FETCHING", p.line())
    p.kill(); p.wait()
    local t0 = core.clock.monotonic()
    assert.equal("TOKEN-1", m:token())
    assert.is_true(core.clock.monotonic() - t0 < 1.5)
    -- hung (SIGSTOP): the lease deadline frees it
    m:invalidate("TOKEN-1")
    p = procs.spawn(holder, path)
    assert.equal("FETCHING", p.line())
    os.execute("kill -STOP " .. p.pid)
    t0 = core.clock.monotonic()
    assert.equal("TOKEN-2", m:token())
    local waited = core.clock.monotonic() - t0
    os.execute("kill -9 " .. p.pid); p.wait()
    assert.is_true(waited < 1.5 + 0.5, "waited " .. waited)
    assert.equal(2, u.n)
    os.remove(path); os.remove(countfile)
  end)
end)

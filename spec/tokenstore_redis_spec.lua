-- The Redis token store: hiredis transport (C) and the server-side scripts
-- (lua/wxhw/store/redis.lua) against a real redis-server on loopback.
local core = require "wxhw.core"
local redis = require "support.redis"
local store_mod = require "wxhw.store.redis"
local token = require "wxhw.token"
local procs = require "support.token_procs"

describe("tokenstore redis #c", function()
  local r, a, b
  setup(function() r = redis.start() end)
  teardown(function() if r then r.stop() end end)
  before_each(function()
    r.cli("FLUSHALL")
    -- two connections stand in for two hosts
    a = assert(store_mod.new{ port = r.port })
    b = assert(store_mod.new{ port = r.port })
  end)
  after_each(function() a:close(); b:close() end)

  it("stores plain, readable records", function()
    assert.equal(1, a:commit("wxhw:k", nil, "TOKEN-A", 1000.5, 10))
    assert.equal("TOKEN-A", r.cli("HGET", "wxhw:k", "access_token"))
    assert.equal("1000.500", r.cli("HGET", "wxhw:k", "expires_at"))
    local rec = b:get("wxhw:k")
    assert.same({ token = "TOKEN-A", expires_at = 1000.5, fetched_at = 10, gen = 1 }, rec)
    assert.is_true(tonumber(r.cli("TTL", "wxhw:k")) > 3600)
    assert.same({ token = false, expires_at = 0, fetched_at = 0, gen = 0 }, b:get("wxhw:none"))
  end)

  it("gives a refresh lease to one host at a time", function()
    local la = assert(a:lease("wxhw:k", 5))
    local lb, who, left = b:lease("wxhw:k", 5)
    assert.is_false(lb)
    assert.equal("pid " .. core.tokenstore.pid(), who)
    assert.is_true(left > 4 and left <= 5)
    -- b cannot commit over a's lease, a can, and that frees the lease
    assert.same({ false, "lease lost" }, { b:commit("wxhw:k", "not-the-owner", "X", 1, 1) })
    assert.is_number(a:commit("wxhw:k", la, "T", 100, 1))
    assert.truthy(b:lease("wxhw:k", 5))
  end)

  it("expires a lease whose holder vanished", function()
    assert.truthy(a:lease("wxhw:k", 0.5)) -- long enough for the next call under valgrind
    assert.is_false((b:lease("wxhw:k", 5)))
    core.clock.sleep(0.6)
    assert.truthy(b:lease("wxhw:k", 5))
  end)

  it("only releases its own lease", function()
    local la = assert(a:lease("wxhw:k", 5))
    assert.is_false(b:release("wxhw:k", "someone-else"))
    assert.is_true(a:release("wxhw:k", la))
    assert.is_false(a:release("wxhw:k", la))
  end)

  it("compares before invalidating", function()
    a:commit("wxhw:k", nil, "T1", 100, 1)
    assert.is_false(b:invalidate("wxhw:k", "T0"))
    assert.equal("T1", a:get("wxhw:k").token)
    assert.is_true(b:invalidate("wxhw:k", "T1"))
    assert.is_false(a:get("wxhw:k").token)
    assert.is_false(a:invalidate("wxhw:k", "T1"))
    assert.equal(2, a:get("wxhw:k").gen)
  end)

  it("shares the force-refresh budget between hosts", function()
    assert.is_true(a:force_permit("wxhw:k", 1000, 5, 2, 30))
    local ok, why, wait = b:force_permit("wxhw:k", 1010, 5, 2, 30)
    assert.is_false(ok)
    assert.equal("spacing", why)
    assert.near(20, wait, 0.01)
    assert.is_true(b:force_permit("wxhw:k", 1040, 5, 2, 30))
    assert.same({ false, "daily", 0 }, { a:force_permit("wxhw:k", 2000, 5, 2, 30) })
  end)

  it("reloads its scripts after SCRIPT FLUSH and reconnects after a restart", function()
    a:commit("wxhw:k", nil, "T1", 100, 1)
    r.cli("SCRIPT", "FLUSH")
    assert.is_true(a:invalidate("wxhw:k", "T1"))
    r.restart()
    assert.same({ token = false, expires_at = 0, fetched_at = 0, gen = 0 }, a:get("wxhw:k"))
  end)

  it("reports a down server as a store error, and raises on misuse", function()
    local s, err = store_mod.new{ port = 1 }
    assert.is_nil(s)
    assert.equal("store", err.kind)
    assert.matches("cannot connect to redis", err.message)
    local conn = assert(core.tokenstore.redis_connect{ port = r.port, password = "", timeout = 0.5 })
    assert.has_error(function() conn:command() end)
    assert.has_error(function() conn:command({}) end)
    assert.has_error(function() core.tokenstore.redis_connect{ port = 70000 } end)
    local res, cerr = conn:command("NOSUCHCOMMAND")
    assert.is_nil(res)
    assert.is_true(cerr.redis_error)
    assert.equal("PONG", conn:command("PING"))
    assert.matches("^wxhw.TokenRedis 127.0.0.1:%d+ db 0 %(connected%)$", tostring(conn))
    conn:close()
    assert.has_error(function() conn:command("PING") end)
  end)

  it("another host takes over within the lease ttl when the holder is killed (-9)", function()
    local p = procs.spawn([[
      local token = require "wxhw.token"
      local core = require "wxhw.core"
      local m = assert(token.new{ key = "wxhw:spec:kill", lease_ttl = 1,
        store = assert(token.store("redis", { port = tonumber(arg[1]) })),
        fetch = function() io.write("FETCHING\n"); io.stdout:flush(); core.clock.sleep(60) end })
      m:token()
    ]], r.port)
    assert.equal("FETCHING", p.line())
    p.kill(); p.wait()
    local n = 0
    local m = assert(token.new{ key = "wxhw:spec:kill", store = a, lease_ttl = 1, wait_timeout = 5,
                                fetch = function() n = n + 1; return "TOKEN-" .. n, 7200 end })
    local t0 = core.clock.monotonic()
    assert.equal("TOKEN-1", m:token())
    local waited = core.clock.monotonic() - t0
    assert.is_true(waited < 2, "waited " .. waited)   -- the 1 s lease, not the 5 s wait
    assert.equal(1, n)
  end)

  it("a waiter on the holder's host takes over within 1 s when the holder is killed (-9)", function()
    -- the default 30 s lease: only the owner id (host and pid) can free it early
    local p = procs.spawn([[
      local token = require "wxhw.token"
      local core = require "wxhw.core"
      local m = assert(token.new{ key = "wxhw:spec:kill30",
        store = assert(token.store("redis", { port = tonumber(arg[1]) })),
        fetch = function() io.write("FETCHING\n"); io.stdout:flush(); core.clock.sleep(60) end })
      m:token()
    ]], r.port)
    assert.equal("FETCHING", p.line())
    local n = 0
    local m = assert(token.new{ key = "wxhw:spec:kill30", store = a, wait_timeout = 5,
                                fetch = function() n = n + 1; return "TOKEN-" .. n, 7200 end })
    p.kill(); p.wait() -- reaped, as a supervisor (nginx master, systemd) does
    local t0 = core.clock.monotonic()
    assert.equal("TOKEN-1", m:token())
    local waited = core.clock.monotonic() - t0
    assert.is_true(waited < 1, "waited " .. waited)
    assert.equal(1, n)
  end)

  it("never takes over a lease of another host, whatever its pid", function()
    -- 4194305 is above the largest pid_max Linux allows: no such process anywhere
    local boot = require("support.files").read("/proc/sys/kernel/random/boot_id"):match("^[%x%-]+")
    local other = boot == "00000000-0000-0000-0000-000000000000" and "11111111-1111-1111-1111-111111111111"
      or "00000000-0000-0000-0000-000000000000"
    r.cli("SET", "wxhw:k:lease", other .. "/4194305/1 1 abc", "PX", "5000")
    local ok, who, left = b:lease("wxhw:k", 5)
    assert.is_false(ok)
    assert.equal("pid 4194305", who)
    assert.is_true(left > 4)
    -- the same dead pid on this host (same boot): taken over
    r.cli("SET", "wxhw:k:lease", boot .. "/4194305/1 1 abc", "PX", "5000")
    local id = assert(b:lease("wxhw:k", 5))
    assert.equal(id, r.cli("GET", "wxhw:k:lease"))
    assert.equal(id, r.cli("HGET", "wxhw:k", "leased"))
  end)

  it("two managers on two connections fetch once per rotation", function()
    local n, now = 0, 1.7e9
    local function fetch() n = n + 1; return "TOKEN-" .. n, 7200 end
    local m1 = assert(token.new{ key = "wxhw:spec:two", store = a, fetch = fetch, clock = function() return now end })
    local m2 = assert(token.new{ key = "wxhw:spec:two", store = b, fetch = fetch, clock = function() return now end })
    for _ = 1, 10 do assert.equal("TOKEN-1", m1:token()); assert.equal("TOKEN-1", m2:token()) end
    now = now + 7200
    for _ = 1, 10 do assert.equal("TOKEN-2", m2:token()); assert.equal("TOKEN-2", m1:token()) end
    assert.equal(2, n)
    assert.is_true(m1:invalidate("TOKEN-2"))
    assert.is_false(m2:invalidate("TOKEN-2"))
    assert.equal("TOKEN-3", m2:token())
    assert.equal(3, n)
  end)
end)

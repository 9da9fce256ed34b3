-- The C shm token store (csrc/tokenstore_shm.c): layout, permissions,
-- compare-and-invalidate, leases with owner pid + deadline, robustness when a
-- process dies holding the lock or the lease.
local core = require "wxhw.core"
require "wxhw.errors"
local procs = require "support.token_procs"

local ts = core.tokenstore
local sleep = core.clock.sleep

local tmp = require("support.files").fresh_path

local mode_of = require("support.files").mode

describe("tokenstore shm #c", function()
  local path, s
  before_each(function()
    path = tmp()
    s = assert(ts.shm_open(path, 32))
  end)
  after_each(function()
    s:close()
    os.remove(path)
  end)

  it("creates the file with mode 0600 and refuses files others can read", function()
    assert.equal("600", mode_of(path))
    os.execute("chmod 644 " .. path)
    local t, err = ts.shm_open(path)
    assert.is_nil(t)
    assert.equal("store", err.kind)
    assert.matches("group or others", err.message)
    assert.matches("chmod 600", err.message)
  end)

  it("refuses symlinks and files with a foreign layout", function()
    local link = tmp()
    os.execute("ln -s " .. path .. " " .. link)
    local t, err = ts.shm_open(link)
    assert.is_nil(t)
    assert.equal("store", err.kind)
    os.remove(link)
    local junk = tmp()
    local f = io.open(junk, "w")
    f:write(string.rep("x", 4096))
    f:close()
    os.execute("chmod 600 " .. junk)
    -- no magic: re-initialised rather than trusted
    local j = assert(ts.shm_open(junk, 4))
    local i = assert(j:slot("a"))
    assert.is_false((j:get(i)))
    j:close()
    os.remove(junk)
  end)

  it("maps keys to stable slots and reports a full table", function()
    local small = tmp()
    local t = assert(ts.shm_open(small, 2))
    local a, b = t:slot("a"), t:slot("b")
    assert.not_equal(a, b)
    assert.equal(a, t:slot("a"))
    local c, err = t:slot("c")
    assert.is_nil(c)
    assert.matches("full", err.message)
    assert.has_error(function() t:slot(string.rep("k", 200)) end)
    assert.has_error(function() t:get(99) end)
    t:close()
    assert.has_error(function() t:get(a) end, "token store is closed")
    os.remove(small)
  end)

  it("commits, compares-and-invalidates and bumps the generation", function()
    local i = s:slot("app")
    local g0 = s:peek(i)
    local gen = assert(s:commit(i, 0, "TOKEN-A", 7200, 1))
    assert.is_true(gen > g0)
    assert.equal(gen, s:peek(i))
    local tok, exp, fetched, g = s:get(i)
    assert.same({ "TOKEN-A", 7200, 1, gen }, { tok, exp, fetched, g })
    assert.is_false(s:invalidate(i, "TOKEN-OLD"))   -- not the stored one: untouched
    assert.equal(gen, s:peek(i))
    assert.is_true(s:invalidate(i, "TOKEN-A"))
    assert.is_false((s:get(i)))
    assert.is_true(s:peek(i) > gen)
    assert.is_false(s:invalidate(i, "TOKEN-A"))      -- second 40001 on the same token: no-op
  end)

  it("holds a lease for one owner and lets its commit release it", function()
    local i = s:slot("app")
    local ok, id = s:lease(i, 5)
    assert.is_true(ok)
    local ok2, holder, left = s:lease(i, 5)
    assert.is_false(ok2)
    assert.equal(ts.pid(), holder)
    assert.is_true(left > 4 and left <= 5)
    assert.same({ false, "lease lost" }, { s:commit(i, id + 1000, "X", 1, 1) })
    assert.is_number(s:commit(i, id, "T", 100, 1))
    assert.is_true((s:lease(i, 5)))                  -- commit released it
  end)

  it("frees a lease at its deadline", function()
    local i = s:slot("app")
    assert.is_true((s:lease(i, 0.5))) -- long enough for the next call under valgrind
    assert.is_false((s:lease(i, 5)))
    sleep(0.6)
    assert.is_true((s:lease(i, 5)))
  end)

  it("frees a lease whose owner process died (kill -9)", function()
    local p = procs.spawn([[
      local ts = require("wxhw.core").tokenstore
      local s = assert(ts.shm_open(arg[1]))
      assert(s:lease(s:slot("app"), 60))
      io.write("LEASED\n"); io.stdout:flush()
      require("wxhw.core").clock.sleep(60)
    ]], path)
    local i = s:slot("app")
    assert.equal("LEASED", p.line())
    local ok, holder = s:lease(i, 1)
    assert.is_false(ok)
    assert.equal(p.pid, holder)
    p.kill()
    p.wait()
    local ok2 = s:lease(i, 1)
    assert.is_true(ok2)
  end)

  it("stays usable when processes are killed inside critical sections", function()
    local code = [[
      local ts = require("wxhw.core").tokenstore
      local s = assert(ts.shm_open(arg[1]))
      local i = s:slot("hot")
      io.write("GO\n"); io.stdout:flush()
      local n = 0
      while true do
        n = n + 1
        local ok, id = s:lease(i, 5)
        if ok then s:commit(i, id, "T" .. n, n, n) end
        s:invalidate(i, "T" .. n)
      end
    ]]
    for round = 1, 3 do
      local ps = {}
      for k = 1, 3 do ps[k] = procs.spawn(code, path) end
      sleep(0.15 + round * 0.05)
      for _, p in ipairs(ps) do p.kill() end
      for _, p in ipairs(ps) do p.wait() end
    end
    -- A wedged lock would hang here; run the check in a child with a timeout.
    local check = procs.spawn([[
      local ts = require("wxhw.core").tokenstore
      local s = assert(ts.shm_open(arg[1]))
      local i = s:slot("hot")
      s:get(i)
      assert(s:commit(i, 0, "FINAL", 1, 1))
      assert(s:get(i) == "FINAL")
      print("HEALTHY", s)
    ]], path)
    local done = false
    for _ = 1, 250 do
      local f = io.open("/proc/" .. check.pid .. "/stat")
      local st = f and f:read("*l") or ""
      if f then f:close() end
      if st == "" or st:match("^%d+ %b() Z") then done = true break end
      sleep(0.02)
    end
    if not done then check.kill() end
    local out = check.wait()
    assert.matches("HEALTHY", out)
    if os.getenv("WXHW_VERBOSE") then io.stderr:write(out) end
  end)

  it("counts forced refreshes per day with spacing, across processes", function()
    local i = s:slot("stable")
    assert.is_true(s:force_permit(i, 1000, 7, 2, 30))
    local ok, why, wait = s:force_permit(i, 1010, 7, 2, 30)
    assert.is_false(ok)
    assert.equal("spacing", why)
    assert.near(20, wait, 1e-9)
    local p = procs.spawn([[
      local ts = require("wxhw.core").tokenstore
      local s = assert(ts.shm_open(arg[1]))
      print(s:force_permit(s:slot("stable"), 1040, 7, 2, 30))
    ]], path)
    assert.matches("^true", p.wait())
    assert.same({ false, "daily", 0 }, { s:force_permit(i, 2000, 7, 2, 30) })
    assert.is_true(s:force_permit(i, 2000, 8, 2, 30))   -- a new day
  end)

  it("never shows the token in tostring or info", function()
    local i = s:slot("app")
    s:commit(i, 0, "SECRET-TOKEN-VALUE", 10, 1)
    assert.not_matches("SECRET", tostring(s))
    local info = s:info(i)
    for _, v in pairs(info) do assert.not_matches("SECRET", tostring(v)) end
    assert.is_true(info.has_token)
    assert.equal("app", info.key)
    assert.same({ "app" }, s:keys())
  end)
end)

-- The shm key-value store (csrc/kvshm.c, wxhw.call.store.shm): operations
-- and edge cases, file shape and mode, several processes racing add() on the
-- same keys, and a process killed while holding the lock.
local core = require "wxhw.core"
require "wxhw.errors"
local kvstore = require "wxhw.call.store"
local procs = require "support.token_procs"

local kv = core.kvshm
local sleep = core.clock.sleep

local tmp = require("support.files").fresh_path

local mode_of = require("support.files").mode

local wait_bounded = procs.wait_bounded

describe("kvshm #c", function()
  local path, t
  before_each(function()
    path = tmp()
    t = assert(kv.open(path, 100, 64))
  end)
  after_each(function()
    t:close()
    os.remove(path)
  end)

  it("gets, sets, overwrites and deletes binary values", function()
    assert.is_nil(t:get("a"))
    assert.is_true(t:set("a", "one"))
    assert.equal("one", t:get("a"))
    assert.is_true(t:set("a", "x\0y\255"))
    assert.equal("x\0y\255", t:get("a"))
    assert.is_true(t:set("a", ""))
    assert.equal("", t:get("a"))
    assert.is_true(t:delete("a"))
    assert.is_nil(t:get("a"))
    assert.is_true(t:delete("never"))
    local st = t:stats()
    assert.equal(0, st.entries); assert.equal(256, st.capacity); assert.equal(64, st.value_bytes)
  end)

  it("expires entries; add and cas(nil) treat an expired key as absent and reuse its slot", function()
    -- TTLs long enough that the calls before each sleep finish inside them
    -- under valgrind too (it failed there with 50 ms)
    assert.is_true(t:set("e", "v", 0.5))
    assert.is_true(t:add("keep", "k"))
    assert.equal("v", t:get("e"))
    assert.is_false(t:add("e", "w", 10))
    sleep(0.6)
    assert.is_nil(t:get("e"))
    assert.equal("k", t:get("keep"))
    assert.is_true(t:add("e", "w", 10))
    assert.equal("w", t:get("e"))
    assert.equal(1, t:stats().evictions)
    assert.equal(2, t:stats().entries)
    assert.is_true(t:set("f", "v", 0.5))
    sleep(0.6)
    assert.is_true(t:cas("f", nil, "new"))
    assert.equal("new", t:get("f"))
    assert.has_error(function() t:set("g", "v", -1) end)
  end)

  it("add inserts only when absent; cas compares, replaces and deletes atomically", function()
    assert.is_true(t:add("k", "P"))
    assert.is_false(t:add("k", "Q"))
    assert.equal("P", t:get("k"))
    assert.is_false(t:cas("k", "Q", "R"))
    assert.equal("P", t:get("k"))
    assert.is_false(t:cas("k", nil, "R"))
    assert.is_true(t:cas("k", "P", "R", 60))
    assert.equal("R", t:get("k"))
    assert.is_true(t:cas("k", "R", nil))
    assert.is_nil(t:get("k"))
    assert.is_false(t:cas("k", "R", "S"))
    assert.is_true(t:cas("k", nil, nil))
    assert.is_nil(t:get("k"))
    assert.is_true(t:cas("k", nil, "T"))
    assert.equal("T", t:get("k"))
    assert.is_true(t:add("k2", "x"))
    assert.same({ "k", "k2" }, kvstore.shm{ path = path, entries = 100, value_bytes = 64 }:keys("k"))
  end)

  it("reports a full table with nil, err and loses nothing", function()
    local small = tmp()
    local s = assert(kv.open(small, 4, 16))
    local cap = s:stats().capacity
    assert.equal(8, cap)
    for i = 1, cap do assert.is_true(s:add("key" .. i, "v" .. i)) end
    local ok, err = s:add("one-more", "v")
    assert.is_nil(ok)
    assert.equal("store", err.kind)
    assert.matches("full", err.message)
    ok, err = s:set("one-more", "v")
    assert.is_nil(ok); assert.matches("full", err.message)
    ok, err = s:cas("one-more", nil, "v")
    assert.is_nil(ok); assert.matches("full", err.message)
    for i = 1, cap do assert.equal("v" .. i, s:get("key" .. i)) end
    assert.is_true(s:set("key1", "again")) -- an existing key is overwritten in place
    assert.equal("again", s:get("key1"))
    assert.is_true(s:delete("key2"))
    assert.is_true(s:add("one-more", "v"))
    assert.equal(cap, s:stats().entries)
    s:close()
    os.remove(small)
  end)

  it("reuses expired entries: a table cycled many times over never reports full", function()
    local small = tmp()
    local s = assert(kv.open(small, 40, 16)) -- capacity 64
    local n = 0
    for batch = 1, 6 do
      for i = 1, 60 do
        n = n + 1
        assert.is_true(s:add("b" .. batch .. ":" .. i, "v", 0.4)) -- long enough for valgrind
      end
      for i = 1, 60, 7 do assert.equal("v", s:get("b" .. batch .. ":" .. i)) end
      assert.is_true(s:add("b" .. batch .. ":1", "x", 0.4) == false)
      sleep(0.45)
      assert.is_nil(s:get("b" .. batch .. ":1"))
    end
    local st = s:stats()
    -- each add took a never-used tag (entries) or an expired entry (evictions)
    assert.is_true(st.entries >= 60 and st.entries <= 64)
    assert.equal(n - st.entries, st.evictions)
    assert.is_true(st.max_probe < 64)
    s:close()
    os.remove(small)
  end)

  it("refuses long or empty keys (error) and long values (nil, err)", function()
    local k128 = ("k"):rep(128)
    assert.is_true(t:set(k128, "v"))
    assert.equal("v", t:get(k128))
    assert.has_error(function() t:set(k128 .. "k", "v") end)
    assert.has_error(function() t:get(k128 .. "k") end)
    assert.has_error(function() t:add("", "v") end)
    assert.is_true(t:set("v64", ("x"):rep(64)))
    assert.equal(("x"):rep(64), t:get("v64"))
    local ok, err = t:set("v65", ("x"):rep(65))
    assert.is_nil(ok)
    assert.matches("value_bytes", err.message)
    ok, err = t:add("v65", ("x"):rep(65))
    assert.is_nil(ok); assert.equal("store", err.kind)
    assert.is_nil(t:get("v65"))
  end)

  it("holds values larger than its small-copy buffer (value_bytes 4096)", function()
    local bigp = tmp()
    local s = assert(kv.open(bigp, 8, 4096))
    local v = ("0123456789abcdef"):rep(256)
    assert.is_true(s:set("big", v))
    assert.equal(v, s:get("big"))
    assert.is_nil(s:get("other"))
    assert.is_true(s:set("big", "short"))
    assert.equal("short", s:get("big"))
    assert.is_nil((s:set("big", v .. "x")))
    s:close()
    os.remove(bigp)
  end)

  it("is shared by path: another handle and a reopen see the data", function()
    local u = assert(kv.open(path, 100, 64))
    assert.is_true(t:set("shared", "yes", 60))
    assert.equal("yes", u:get("shared"))
    u:close()
    t:close()
    t = assert(kv.open(path, 100, 64))
    assert.equal("yes", t:get("shared"))
  end)

  it("starts afresh on a file from another boot, never on a missing boot id", function()
    -- header: magic[8], 4 x uint32, capacity, seed[2], then boot_id[40] at byte 48
    local function set_boot_id(id)
      t:close()
      local f = assert(io.open(path, "r+b"))
      f:seek("set", 48)
      f:write(id .. ("\0"):rep(40 - #id))
      f:close()
      t = assert(kv.open(path, 100, 64))
    end
    assert.is_true(t:set("k", "v", 600))
    set_boot_id("") -- written by a process without /proc: proves nothing, nothing wiped
    assert.equal("v", t:get("k"))
    set_boot_id("00000000-0000-0000-0000-000000000000\n")
    assert.is_nil(t:get("k"))
    assert.is_true(t:set("k", "again", 600))
    assert.equal("again", t:get("k"))
  end)

  it("creates mode 0600, refuses other shapes, foreign files, symlinks and loose modes", function()
    assert.equal("600", mode_of(path))
    local a, err = kv.open(path, 1000, 64)
    assert.is_nil(a); assert.equal("store", err.kind); assert.matches("incompatible", err.message)
    a, err = kv.open(path, 100, 65)
    assert.is_nil(a); assert.matches("incompatible", err.message)
    local junk = tmp()
    local f = io.open(junk, "w"); f:write(("x"):rep(5000)); f:close()
    os.execute("chmod 600 " .. junk)
    a, err = kv.open(junk, 10, 16)
    assert.is_nil(a); assert.matches("not a kv store file", err.message)
    f = io.open(junk, "rb"); assert.equal(("x"):rep(5000), f:read("*a")); f:close()
    os.execute("chmod 644 " .. junk)
    a, err = kv.open(junk, 10, 16)
    assert.is_nil(a); assert.matches("group or others", err.message)
    os.remove(junk)
    local link = tmp()
    os.execute("ln -s " .. path .. " " .. link)
    a = kv.open(link, 100, 64)
    assert.is_nil(a)
    os.remove(link)
  end)

  it("close is idempotent; tostring shows path and shape, never values", function()
    t:set("secret-key", "SECRET-VALUE")
    local s = tostring(t)
    assert.matches("wxhw.KvShm", s, 1, true)
    assert.matches(path, s, 1, true)
    assert.matches("capacity 256", s, 1, true)
    assert.not_matches("SECRET", s)
    local w = kvstore.shm{ path = path, entries = 100, value_bytes = 64 }
    assert.not_matches("SECRET", tostring(w))
    w:close(); w:close()
    t:close(); t:close()
    assert.equal("wxhw.KvShm (closed)", tostring(t))
    assert.has_error(function() t:get("secret-key") end, "kv store is closed")
    t = assert(kv.open(path, 100, 64))
  end)

  it("gives exactly one winner per key to processes racing add()", function()
    local big = tmp()
    local code = [[
      local t = assert(require("wxhw.core").kvshm.open(arg[1], 4000, 16))
      local won = 0
      for i = 1, 3000 do
        if t:add("k" .. i, arg[2]) then won = won + 1 end
      end
      print("WON " .. won)
    ]]
    assert(kv.open(big, 4000, 16)):close() -- created before the race: no shape race
    local ps, total = {}, 0
    for k = 1, 4 do ps[k] = procs.spawn(code, big, "p" .. k) end
    for _, p in ipairs(ps) do
      local out = wait_bounded(p, 20)
      total = total + assert(tonumber(out:match("WON (%d+)")), out)
    end
    assert.equal(3000, total)
    local s = assert(kv.open(big, 4000, 16))
    assert.equal(3000, s:stats().entries)
    for i = 1, 3000, 97 do assert.matches("^p%d$", s:get("k" .. i)) end
    s:close()
    os.remove(big)
  end)

  -- Another process adds a key and reads the one left half written: the
  -- table must answer (within 5 s), drop that slot and count one recovery.
  local function assert_recovered()
    local check = procs.spawn([[
      local t = assert(require("wxhw.core").kvshm.open(arg[1], 100, 64))
      assert(t:add("after", "ok"))
      print("HEALTHY", t:get("after"), t:get("dirty"), t:stats().recoveries)
    ]], path)
    local out = wait_bounded(check, 5)
    -- the slot being written is dropped (it may be half written)
    assert.matches("HEALTHY\tok\tnil\t1", out, 1, true)
    assert.equal(1, t:stats().entries)
  end

  it("is not wedged by a process killed while holding the lock", function()
    t:set("dirty", "before")
    local p = procs.spawn([[
      local t = assert(require("wxhw.core").kvshm.open(arg[1], 100, 64))
      io.write("HOLDING\n"); io.stdout:flush()
      t:_test_hold_lock("dirty", "pause")
    ]], path)
    assert.equal("HOLDING", p.line())
    sleep(0.05)
    p.kill()
    p.wait()
    assert_recovered()
  end)

  -- The kernel marks a dead owner's robust mutex only when it can reach it;
  -- here the holder unmaps the table first, so the lock word keeps its id
  -- and, before csrc/store/shmfile.c reclaimed such locks, every later
  -- locker slept forever. Once as a zombie (exited, not yet reaped by its
  -- parent: the id still exists), once reaped.
  for _, reaped in ipairs{ false, true } do
    it("is not wedged by a holder gone without the kernel's cleanup (" .. (reaped and "reaped" or "a zombie") .. ")",
      function()
        t:set("dirty", "before")
        local p = procs.spawn([[
          local t = assert(require("wxhw.core").kvshm.open(arg[1], 100, 64))
          t:_test_hold_lock("dirty", "exit")
        ]], path)
        local state
        for _ = 1, 250 do
          local f = io.open("/proc/" .. p.pid .. "/stat")
          state = f and f:read("*l"):match("^%d+ %b() (%a)")
          if f then f:close() end
          if state == "Z" then break end
          sleep(0.02)
        end
        assert.equal("Z", state)
        if reaped then p.wait() end
        assert_recovered()
        p.wait()
      end)
  end
end)

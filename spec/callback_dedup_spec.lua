-- wxhw.callback.dedup entries: padded (entry_bytes, the lua_shared_dict
-- layout) and plain, replies returned byte for byte.
local dedup = require "wxhw.callback.dedup"
local kv = require "wxhw.call.store"
local owner = require "wxhw.owner"

describe("callback dedup entries", function()
  local store, dd
  before_each(function()
    store = kv.memory()
    dd = dedup.new{ store = store, entry_bytes = 444 }
  end)

  it("pads claim and reply to one length, so the reply can overwrite the claim in place", function()
    local body = '{"Encrypt":"abc","x":"trailing spaces and newline  \n"}  '
    assert.equal("new", dd:claim("mp:id:1"))
    local claim = store:get("dup:mp:id:1")
    assert.equal(444 - #"dup:mp:id:1", #claim)
    assert.equal("P", claim:sub(1, 1))
    dd:done("mp:id:1", 200, "application/json", body)
    local v = store:get("dup:mp:id:1")
    assert.equal(#claim, #v)
    assert.is_true(dedup.is_done(v))
    local state, status, ctype, b = dd:claim("mp:id:1")
    assert.equal("dup", state)
    assert.equal(200, status); assert.equal("application/json", ctype); assert.equal(body, b)
  end)

  it("stores a reply that does not fit unpadded, and an empty content type", function()
    local body = ("z"):rep(1000) .. "\n"
    assert.equal("new", dd:claim("k"))
    dd:done("k", 204, nil, body)
    assert.equal("D", store:get("dup:k"):sub(1, 1))
    local state, status, ctype, b = dd:claim("k")
    assert.equal("dup", state); assert.equal(204, status); assert.is_nil(ctype); assert.equal(body, b)
  end)

  it("gives back any reply byte for byte, padded or not (random statuses, types and bodies)", function()
    math.randomseed(7)
    local plain = dedup.new{ store = store, prefix = "plain:" }
    local function bytes(n, no_newline)
      local t = {}
      for i = 1, n do
        local b = math.random(0, 255)
        if no_newline and b == 10 then b = 11 end
        t[i] = string.char(b)
      end
      return table.concat(t)
    end
    for i = 1, 400 do
      local status = math.random(100, 599)
      local ctype = math.random() < 0.2 and nil or bytes(math.random(1, 40), true)
      local body = bytes(math.random(0, i % 3 == 0 and 600 or 200))
      for _, d in ipairs{ dd, plain } do
        local key = "r" .. i
        assert.equal("new", d:claim(key))
        d:done(key, status, ctype, body)
        local state, st, ct, b = d:claim(key)
        assert.equal("dup", state)
        assert.equal(status, st); assert.equal(ctype, ct); assert.equal(body, b)
      end
    end
  end)

  it("a damaged reply entry is no answer: claim says so (the push is then handled unguarded)", function()
    for _, v in ipairs{ "D200", "Dx\nct\nbody", "E200\nct\nzz\nbody", "E200\nct" } do
      store:set("dup:bad", v, 60)
      local state, err = dd:claim("bad")
      assert.is_nil(state, v)
      assert.matches("cannot be read", err)
    end
  end)

  it("abandon releases a padded claim; without entry_bytes nothing is padded", function()
    assert.equal("new", dd:claim("a"))
    dd:abandon("a")
    assert.is_nil(store:get("dup:a"))
    assert.equal("new", dd:claim("a"))
    local plain = dedup.new{ store = kv.memory() }
    assert.equal("new", plain:claim("a"))
    assert.equal("P" .. owner.id() .. " ", plain.store:get("dup:a"))
    plain:done("a", 200, "text/plain", "success")
    assert.equal("D200\ntext/plain\nsuccess", plain.store:get("dup:a"))
  end)

  it("a claim in flight (padded or not) is busy for a copy that cannot wait", function()
    assert.is_true(store:add("dup:b", "P", 60))
    assert.equal("busy", dd:claim("b"))
    assert.equal("new", dd:claim("c"))
    assert.equal("busy", dd:claim("c"))
  end)
end)

-- The same claim/done/abandon protocol on each store kind, the shm table
-- included (several handles on one path stand for nginx workers).
local core = require "wxhw.core"
local shm_path = require("support.files").fresh_path

for _, kind in ipairs{ "memory", "shm #c", "redis" } do
  describe("callback dedup on the " .. kind .. " store", function()
    local path, store, other, server
    teardown(function() if server then server.stop() end end)
    before_each(function()
      if kind == "memory" then
        store = kv.memory(); other = store
      elseif kind == "redis" then -- two connections stand for two gateways
        server = server or require("support.redis").start()
        server.cli("FLUSHALL")
        store = assert(kv.redis{ host = server.host, port = server.port, prefix = "t:" })
        other = assert(kv.redis{ host = server.host, port = server.port, prefix = "t:" })
      else
        path = shm_path()
        store = assert(kv.shm{ path = path, entries = 64, value_bytes = 200 })
        other = assert(kv.shm{ path = path, entries = 64, value_bytes = 200 })
      end
    end)
    after_each(function()
      if path then store:close(); other:close(); os.remove(path); path = nil end
      if kind == "redis" then store:close(); other:close() end
    end)

    it("claims once, replays the reply byte for byte to another handle, abandons", function()
      local a = dedup.new{ store = store, entry_bytes = 444 }
      local b = dedup.new{ store = other, entry_bytes = 444 }
      if kind == "shm #c" then assert.is_nil(a.entry_bytes) end -- fixed slots: never padded
      assert.equal("new", a:claim("mp:id:7"))
      assert.equal("busy", b:claim("mp:id:7"))
      local body = "<xml>\0reply \n</xml>"
      assert.is_true(a:done("mp:id:7", 200, "text/xml", body))
      local state, status, ctype, got = b:claim("mp:id:7")
      assert.equal("dup", state); assert.equal(200, status); assert.equal("text/xml", ctype); assert.equal(body, got)
      assert.equal("new", b:claim("mp:id:8"))
      assert.is_true(b:abandon("mp:id:8"))
      assert.equal("new", a:claim("mp:id:8"))
    end)

    it("a claim whose lease ran out is claimed again; a reply is kept for ttl, not the lease", function()
      -- long enough for both claims to land inside it under valgrind
      local a = dedup.new{ store = store, lease = 0.5 }
      local b = dedup.new{ store = other, lease = 0.5 }
      assert.equal("new", a:claim("k"))
      assert.equal("busy", b:claim("k"))
      core.clock.sleep(0.6)
      assert.equal("new", b:claim("k"))
      b:done("k", 200, "text/plain", "success")
      core.clock.sleep(0.6)
      assert.equal("dup", a:claim("k"))
    end)

    it("a claim whose process is gone is taken over at once, by one copy; the old owner cannot release it", function()
      local a = dedup.new{ store = store }
      local b = dedup.new{ store = other }
      local p = io.popen("sh -c 'echo $$'"); local dead = p:read("*l"); p:close() -- exited and reaped
      local boot, _, start = owner.id():match("^(.-)/(%d+)/(%d+)$")
      local gone_claim = "P" .. boot .. "/" .. dead .. "/" .. start .. " "
      assert.is_true(store:add("dup:g", gone_claim, 60))
      assert.equal("new", a:claim("g"))
      assert.equal("busy", b:claim("g")) -- a's claim: a runs
      assert.is_false(store:cas("dup:g", gone_claim, nil)) -- the dead owner's release finds nothing of its own
      -- a live process (pid 1) with its own start time holds its claim; another start time is a reused pid
      local pid1 = owner.id():gsub("/%d+/%d+$", "/1/" .. owner._start_time(1))
      assert.is_true(store:add("dup:h", "P" .. pid1 .. " ", 60))
      assert.equal("busy", a:claim("h"))
      assert.is_true(store:add("dup:r", "P" .. boot .. "/1/12345678901 ", 60))
      assert.equal("new", a:claim("r"))
      -- a claim from another host (boot id) or without an owner waits for its lease
      assert.is_true(store:add("dup:o", "P00000000-1111-2222-3333-444444444444/" .. dead .. "/1 ", 60))
      assert.equal("busy", a:claim("o"))
      assert.is_true(store:add("dup:n", "P", 60))
      assert.equal("busy", a:claim("n"))
    end)

    if kind == "shm #c" then
      it("a reply longer than value_bytes is not kept: nil, err, and copies get a plain acknowledgement", function()
        local a = dedup.new{ store = store }
        assert.equal("new", a:claim("big"))
        local ok, err = a:done("big", 200, "application/json", ("x"):rep(300))
        assert.is_nil(ok)
        assert.matches("value_bytes", err.message)
        local state, status, ctype, body = dedup.new{ store = other }:claim("big")
        assert.equal("dup", state)
        assert.same({ 200, "text/plain; charset=utf-8", "success" }, { status, ctype, body })
      end)
    end
  end)
end

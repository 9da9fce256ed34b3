-- wxhw.callback.dedup entries: padded (entry_bytes, the lua_shared_dict
-- layout) and plain, replies returned byte for byte.
local dedup = require "wxhw.callback.dedup"
local kv = require "wxhw.call.store"

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

  it("abandon releases a padded claim; without entry_bytes nothing is padded", function()
    assert.equal("new", dd:claim("a"))
    dd:abandon("a")
    assert.is_nil(store:get("dup:a"))
    assert.equal("new", dd:claim("a"))
    local plain = dedup.new{ store = kv.memory() }
    assert.equal("new", plain:claim("a"))
    assert.equal("P", plain.store:get("dup:a"))
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

for _, kind in ipairs{ "memory", "shm #c" } do
  describe("callback dedup on the " .. kind .. " store", function()
    local path, store, other
    before_each(function()
      if kind == "memory" then
        store = kv.memory(); other = store
      else
        path = shm_path()
        store = assert(kv.shm{ path = path, entries = 64, value_bytes = 200 })
        other = assert(kv.shm{ path = path, entries = 64, value_bytes = 200 })
      end
    end)
    after_each(function()
      if path then store:close(); other:close(); os.remove(path); path = nil end
    end)

    it("claims once, replays the reply byte for byte to another handle, abandons", function()
      local a = dedup.new{ store = store, entry_bytes = 444 }
      local b = dedup.new{ store = other, entry_bytes = 444 }
      if kind ~= "memory" then assert.is_nil(a.entry_bytes) end
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

    it("a claim that expired is claimed again", function()
      -- long enough for both claims to land inside it under valgrind
      local a = dedup.new{ store = store, ttl = 0.5 }
      local b = dedup.new{ store = other, ttl = 0.5 }
      assert.equal("new", a:claim("k"))
      assert.equal("busy", b:claim("k"))
      core.clock.sleep(0.6)
      assert.equal("new", b:claim("k"))
    end)

    if kind ~= "memory" then
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

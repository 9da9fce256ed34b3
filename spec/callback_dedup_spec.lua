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

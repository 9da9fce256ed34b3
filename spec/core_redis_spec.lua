-- wxhw.core.redis (csrc/store/redis.c): the hiredis connection under its own
-- name, with the token store's old name for it (tokenstore.redis_connect)
-- kept as an alias, against a real redis-server on loopback.
local core = require "wxhw.core"
local redis = require "support.redis"

describe("wxhw.core.redis #c", function()
  local r
  setup(function() r = redis.start() end)
  teardown(function() if r then r.stop() end end)

  it("connects and runs commands; tokenstore.redis_connect makes the same objects", function()
    assert.is_function(core.redis.connect)
    local c = assert(core.redis.connect{ port = r.port, timeout = 1 })
    local old = assert(core.tokenstore.redis_connect{ port = r.port, timeout = 1 })
    assert.equal(getmetatable(c), getmetatable(old))
    old:close()
    assert.equal("PONG", c:command("PING"))
    assert.equal("OK", c:command("SET", "wxhw:core_redis", "v\0x"))
    assert.equal("v\0x", c:command("GET", "wxhw:core_redis"))
    assert.matches("connected", tostring(c))
    c:close()
    assert.matches("closed", tostring(c))
  end)

  it("returns nil and a store error when nothing listens", function()
    local c, err = core.redis.connect{ port = 1, timeout = 0.5 } -- nothing listens on port 1
    assert.is_nil(c)
    assert.equal("store", err.kind)
  end)

  it("keeps a password out of its error", function()
    -- the server has no password, so AUTH is refused
    local c, err = core.redis.connect{ port = r.port, password = "SECRET-PW", timeout = 1 }
    assert.is_nil(c)
    assert.equal("store", err.kind)
    assert.not_matches("SECRET%-PW", tostring(err))
  end)
end)

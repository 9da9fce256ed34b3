-- wxhw.redis: the one Redis connection of the token store, the kv store, the
-- Pay limiter and the replay cache, against a real redis-server on loopback.
local redis = require "wxhw.redis"
local server = require "support.redis"

describe("wxhw.redis #c", function()
  local r
  setup(function() r = server.start() end)
  teardown(function() if r then r.stop() end end)
  before_each(function() r.cli("FLUSHALL") end)

  it("connects over hiredis outside nginx, and shares a connection it is given", function()
    local conn = assert(redis.connect{ port = r.port })
    assert.matches("^wxhw.TokenRedis 127.0.0.1:%d+", tostring(conn))
    assert.equal(conn, redis.connect{ conn = conn })
    local none, err = redis.connect{ port = 1 }
    assert.is_nil(none)
    assert.equal("store", err.kind)
    conn:close()
  end)

  it("runs a script by its SHA1 and loads it again after SCRIPT FLUSH", function()
    local conn = assert(redis.connect{ port = r.port })
    local incr = redis.script "return redis.call('INCRBY', KEYS[1], ARGV[1])"
    assert.equal(2, incr(conn, 1, "n", 2))
    r.cli("SCRIPT", "FLUSH")
    assert.equal(5, incr(conn, 1, "n", 3))
    local bad = redis.script "return redis.call('NOSUCH')"
    local res, err = bad(conn, 0)
    assert.is_nil(res)
    assert.is_true(err.redis_error)
    conn:close()
  end)

  -- A connection the server closed while idle has not run the command:
  -- the kv store and the Pay limiter send it once more, as the token store
  -- always did, instead of failing the first call after a Redis restart.
  it("sends a command again on a connection the server closed (kv cas, Pay limiter)", function()
    local kv = assert(require("wxhw.kv").redis{ port = r.port, prefix = "t:" })
    local limiter = assert(require("wxhw.pay.limiter").shared{ port = r.port, prefix = "rl:" })
    assert.is_true(kv:set("k", "a"))
    assert.is_true(limiter:acquire("devices", { rate = 20, burst = 20 }))
    r.restart()
    assert.is_true(kv:cas("k", nil, "b"))
    assert.is_true(limiter:acquire("devices", { rate = 20, burst = 20 }))
    assert.equal("b", r.cli("GET", "t:k"))
    kv:close()
  end)

  it("keeps the old module names working", function()
    assert.equal(require "wxhw.kv", require "wxhw.call.store")
    for _, kind in ipairs{ "memory", "shm", "redis", "ngx_shared" } do
      assert.equal(require("wxhw.token.store." .. kind), require("wxhw.store." .. kind))
    end
    assert.equal(redis.connect, require("wxhw.store.redis").connect)
  end)
end)

-- The client-side limiter for WeChat Pay: its Redis backend, and two
-- processes sharing one 20 QPS budget against the emulator (which answers 429
-- to the 21st request of a second from one client).
local limiter = require "wxhw.pay.limiter"
local ratelimit = require "wxhw.ratelimit"
local redis = require "support.redis"
local emulator = require "support.emulator"
local core = require "wxhw.core"
local socket = require "socket"
local periods = require "support.quota_periods"

describe("wxhw.pay shared limiter", function()
  local r, e
  setup(function()
    r = redis.start()
    e = emulator.start{ seed = 3, iot_devices = 6000 }
  end)
  teardown(function()
    if e then e.stop() end
    if r then r.stop() end
  end)

  it("keeps a token bucket and a daily counter in Redis", function()
    periods.clear_of_midnight(30)
    local conn = assert(core.tokenstore.redis_connect{ host = r.host, port = r.port })
    local rl = ratelimit.new{ backend = limiter.redis(conn, "t1:") }
    local rule = { rate = 10, burst = 2, daily = 5 }
    assert.is_true(rl:acquire("k", rule))
    assert.is_true(rl:acquire("k", rule))
    local ok, err = rl:acquire("k", rule) -- the burst is spent; no waiting allowed
    assert.is_nil(ok)
    assert.equal("rate", err.reason)
    assert.is_true(err.retry_after > 0 and err.retry_after <= 0.1)
    local t0 = socket.gettime()
    assert.is_true(rl:acquire("k", rule, 1))
    assert.is_true(socket.gettime() - t0 >= 0.05)
    assert.equal(3, rl:count("k"))
    -- a second client on another connection sees the same bucket and count
    local rl2 = limiter.shared{ host = r.host, port = r.port, prefix = "t1:" }
    assert.equal(3, rl2:count("k"))
    assert.is_true(rl2:acquire("k", rule, 1))
    assert.is_true(rl:acquire("k", rule, 1))
    ok, err = rl2:acquire("k", rule, 1)
    assert.is_nil(ok)
    assert.equal("daily", err.reason)
    rl:exhaust("other")
    assert.equal("daily", select(2, rl2:acquire("other", { rate = 10 })).reason)
    assert.truthy(r.cli("KEYS", "t1:*"):find("t1:k:bucket", 1, true))
  end)

  it("shares the notification replay cache between processes through Redis", function()
    local replay = require "wxhw.replay"
    local a = replay.new{ redis = assert(core.tokenstore.redis_connect{ host = r.host, port = r.port }), prefix = "rp:" }
    local b = replay.new{ redis = assert(core.tokenstore.redis_connect{ host = r.host, port = r.port }), prefix = "rp:" }
    assert.is_true(a:check("1700000000:nonceA", 0))
    assert.is_false(b:check("1700000000:nonceA", 0))
    assert.is_true(b:check("1700000000:nonceB", 0))
    local ttl = tonumber(r.cli("TTL", "rp:1700000000:nonceA"))
    assert.is_true(ttl > 590 and ttl <= 600)
  end)

  local function run_pair(use_redis)
    local rt = os.getenv("WXHW_RUNTIME") == "luajit" and "luajit" or "lua5.4"
    -- both start at one instant, 3 s from now, whatever their set-up costs under load
    local start_at = string.format("%.3f", socket.gettime() + 3)
    local cmd = function(off, out)
      return string.format("%s spec/support/pay_lister.lua %s 30 %d %s %s > %s", rt, e.base_url, off,
        use_redis and tostring(r.port) or "-", start_at, out)
    end
    local o1, o2 = os.tmpname(), os.tmpname()
    r.cli("FLUSHALL")
    local p = io.popen(cmd(0, o1) .. " & " .. cmd(3000, o2) .. " & wait")
    p:read("*a")
    p:close()
    local res = {}
    for i, f in ipairs({ o1, o2 }) do
      local fh = io.open(f)
      local line = fh and fh:read("*a") or ""
      if fh then fh:close() end
      os.remove(f)
      local n, n429, secs = line:match("RESULT (%d+) (%d+) ([%d.]+)")
      assert(n, "lister " .. i .. " failed: " .. line)
      res[i] = { n = tonumber(n), n429 = tonumber(n429), secs = tonumber(secs) }
    end
    return res
  end

  it("two processes on one Redis budget stay under 20 QPS together: zero 429s", function()
    local res = run_pair(true)
    for _, x in ipairs(res) do
      assert.equal(3000, x.n)
      assert.equal(0, x.n429)
    end
    -- 60 pages shared at 19.5/s take about 3 s; each alone would take 1.5 s
    assert.is_true(math.max(res[1].secs, res[2].secs) >= 2.8)
  end)

  it("the same two processes with separate limiters get 429s (the spec can fail)", function()
    local res = run_pair(false)
    for _, x in ipairs(res) do assert.equal(3000, x.n) end -- retried to completion
    assert.is_true(res[1].n429 + res[2].n429 > 0)
    if os.getenv("WXHW_VERBOSE") then print(("\n# separate limiters: %d + %d 429s"):format(res[1].n429, res[2].n429)) end
  end)
end)

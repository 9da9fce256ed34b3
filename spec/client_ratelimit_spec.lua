-- wxhw.ratelimit: token bucket + daily counter, on a controlled clock.
local ratelimit = require "wxhw.ratelimit"
local periods = require "support.quota_periods"

local function clock(start)
  local c = { t = start, slept = 0 }
  c.now = function() return c.t end
  c.sleep = function(s) c.t = c.t + s; c.slept = c.slept + s end
  return c
end

-- 2026-11-24 10:00:00 UTC
local T0 = 1795514400

describe("wxhw.ratelimit", function()
  it("allows a burst, then refills at the rate", function()
    local c = clock(T0)
    local rl = ratelimit.new{ now = c.now, sleep = c.sleep }
    local rule = { rate = 2, burst = 3 }
    for _ = 1, 3 do assert.is_true(rl:acquire("k", rule)) end
    local ok, err = rl:acquire("k", rule)
    assert.is_nil(ok)
    assert.equal("quota", err.kind)
    assert.equal("rate", err.reason)
    assert.near(0.5, err.retry_after, 1e-9)
    c.t = c.t + 0.5
    assert.is_true(rl:acquire("k", rule))
    -- keys are independent
    assert.is_true(rl:acquire("other", rule))
  end)

  it("waits for a token when allowed to", function()
    local c = clock(T0)
    local rl = ratelimit.new{ now = c.now, sleep = c.sleep }
    local rule = { rate = 4, burst = 1 }
    assert.is_true(rl:acquire("k", rule, 1))
    assert.is_true(rl:acquire("k", rule, 1))
    assert.near(0.25, c.slept, 1e-9)
    assert.is_nil((rl:acquire("k", rule, 0.1)))
  end)

  it("counts calls per day and refuses beyond the daily quota until midnight UTC+8", function()
    local c = clock(T0)
    local rl = ratelimit.new{ now = c.now, sleep = c.sleep }
    local rule = { daily = 3 }
    for _ = 1, 3 do assert.is_true(rl:acquire("k", rule)) end
    assert.equal(3, rl:count("k"))
    local _, err = rl:acquire("k", rule)
    assert.equal("daily", err.reason)
    assert.equal("daily_quota", err.class)
    assert.is_false(err.retryable)
    -- 10:00 UTC is 18:00 in Beijing: 6 hours to the reset
    assert.near(6 * 3600, err.retry_after, 1e-6)
    c.t = T0 + 6 * 3600 - 1
    assert.is_nil((rl:acquire("k", rule)))
    c.t = T0 + 6 * 3600
    assert.is_true(rl:acquire("k", rule))
    assert.equal(1, rl:count("k"))
  end)

  it("exhaust() blocks a key for the rest of the day", function()
    local c = clock(T0)
    local rl = ratelimit.new{ now = c.now, sleep = c.sleep }
    assert.is_true(rl:acquire("k", {}))
    rl:exhaust("k")
    assert.equal("daily", select(2, rl:acquire("k", {})).reason)
    assert.is_true(rl:acquire("j", {}))
    c.t = T0 + 7 * 3600
    assert.is_true(rl:acquire("k", {}))
  end)

  it("has per-API defaults for documented limits", function()
    local pay = ratelimit.DEFAULTS["pay /v3/iotmanage/devices"]
    assert.equal(20, pay.rate)
    assert.equal(50000, pay.daily)
    assert.equal(500000, ratelimit.DEFAULTS["mp /cgi-bin/stable_token"].daily)
  end)

  it("accepts a custom backend", function()
    local seen = {}
    local backend = {
      take = function(_, key, rule, now, day) seen[#seen + 1] = { key, rule.daily, now, day }; return true, 1 end,
      exhaust = function() end, count = function() return 7 end,
    }
    local c = clock(T0)
    local rl = ratelimit.new{ now = c.now, sleep = c.sleep, backend = backend }
    assert.is_true(rl:acquire("k", { daily = 9 }))
    assert.same({ { "k", 9, T0, math.floor((T0 + 8 * 3600) / 86400) } }, seen)
    assert.equal(7, rl:count("k"))
  end)
end)

describe("wxhw.ratelimit shdict backend (nginx, 2 workers)", function()
  local nginx = require "support.nginx"
  local http = require "wxhw.http"
  local srv, c

  setup(function()
    srv = assert(nginx.start{
      workers = 2,
      http_block = "lua_shared_dict rl 1m;",
      server_block = [[
    location = /take {
      content_by_lua_block {
        local ratelimit = require "wxhw.ratelimit"
        local rl = ratelimit.new{ backend = ratelimit.shdict("rl") }
        local ok, err = rl:acquire(ngx.var.arg_key, { daily = tonumber(ngx.var.arg_daily) })
        ngx.print(ok and ("ok " .. rl:count(ngx.var.arg_key)) or err.reason)
      }
    }
    location = /exhaust {
      content_by_lua_block {
        local ratelimit = require "wxhw.ratelimit"
        ratelimit.new{ backend = ratelimit.shdict("rl") }:exhaust(ngx.var.arg_key)
        ngx.print("done")
      }
    }]],
    })
    c = http.new{}
  end)
  teardown(function()
    c:close()
    srv:stop()
  end)

  it("shares the daily count across workers, exactly", function()
    periods.clear_of_midnight(30)
    local reqs = {}
    for i = 1, 30 do reqs[i] = { url = srv.base_url .. "/take?key=a&daily=12" } end
    local ok, daily = 0, 0
    for _, r in ipairs(c:batch(reqs, { concurrency = 8 })) do
      if r.body:match("^ok") then ok = ok + 1 elseif r.body == "daily" then daily = daily + 1 end
    end
    assert.equal(12, ok)
    assert.equal(18, daily)
  end)

  it("exhaust() applies to every worker", function()
    periods.clear_of_midnight(30)
    assert.equal("ok 1", c:request{ url = srv.base_url .. "/take?key=b&daily=100" }.body)
    assert.equal("done", c:request{ url = srv.base_url .. "/exhaust?key=b" }.body)
    for _ = 1, 4 do assert.equal("daily", c:request{ url = srv.base_url .. "/take?key=b&daily=100" }.body) end
  end)
end)

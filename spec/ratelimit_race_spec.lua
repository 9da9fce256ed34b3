-- wxhw.ratelimit's shdict backend with two nginx workers taking from the same
-- keys at once, an invariant checked on every take. The limiter is driven by a
-- clock running 10x real time (take() gets `now` from its caller), so windows
-- and days pass quickly without the loops running long.
--   * "daily" means the day's quota is used up: after one worker was refused
--     for the day, no call on that key may be admitted any more, and never
--     more than `daily` calls are admitted;
--   * over any span T from the start, at most rate * T + 2 * burst calls are
--     admitted (what fixed windows of burst/rate seconds allow; a one-second
--     window holding `burst` calls admits burst per second instead of rate).
-- nginx always runs LuaJIT: once, in the Lua 5.4 pass.
local race = require "support.nginx_race"

describe("ratelimit shdict backend, two workers at once #nosan #lua54", function()
  local srv
  setup(function()
    srv = assert(race.start{
      http_block = "lua_shared_dict rl 1m;",
      prepare = [[
        local rl = require "wxhw.ratelimit"
        local b = rl.shdict("rl")
      ]],
      run = [[
        if role == 0 then ngx.update_time(); d:add("start", ngx.now() + 0.02) end
        while not d:get("start") do ngx.sleep(0.001) end
        local start, T0 = d:get("start"), 1795514400 -- a whole second, 10:00 UTC
        while ngx.now() < start do ngx.sleep(0.001); ngx.update_time() end
        local function clock() ngx.update_time(); return T0 + (ngx.now() - start) * 10 end
        local day = rl.day_of(T0, rl.DAY_OFFSET)

        -- 1: daily = 2, rounds of 1.25 s (each holds a window boundary), a key per round
        local daily_rule = { rate = 100, burst = 1, daily = 2 }
        local takes, late, over = 0, 0, 0
        while true do
          local now = clock()
          local round = math.floor((now - T0) / 1.25)
          if round >= 4 then break end
          local key = "d" .. round
          local refused_before = d:get("refused:" .. key)
          local ok, why = b:take(key, daily_rule, now, day)
          takes = takes + 1
          if ok then
            if refused_before then late = late + 1 end
            if d:incr("admitted:" .. key, 1, 0) > daily_rule.daily then over = over + 1 end
          elseif why == "daily" then
            d:set("refused:" .. key, true)
          end
        end

        -- 2: rate 10/s with bursts of 40, for 2.2 s (waits 1 ms between takes)
        local rate_rule = { rate = 10, burst = 40 }
        local t1 = clock()
        local rtakes, fast = 0, 0
        while clock() < t1 + 2.2 do
          local ok = b:take("r", rate_rule, clock(), day)
          rtakes = rtakes + 1
          if ok then
            local n = d:incr("admitted:r", 1, 0)
            local span = clock() - t1
            if n > rate_rule.rate * span + 2 * rate_rule.burst then fast = fast + 1 end
          end
          ngx.sleep(0.001)
        end
        d:set("result" .. role, table.concat({ takes, late, over, rtakes, fast }, " "))
      ]],
      report = [[
        local t = {}
        for k = 1, 4 do t[#t + 1] = tostring(d:get("admitted:d" .. (k - 1)) or 0) end
        return tostring(d:get("result0")) .. "|" .. tostring(d:get("result1")) .. "|" .. table.concat(t, " ")
          .. "|" .. tostring(d:get("admitted:r"))
      ]],
    })
  end)
  teardown(function() if srv then srv:stop() end end)

  it("never refuses a call for the day while quota is left, nor admits faster than the rate", function()
    local line = race.report(srv)
    local w0, w1, per_round, rate_admitted = tostring(line):match("^([^|]+)|([^|]+)|([^|]+)|(%d+)")
    assert.is_truthy(w0, tostring(line) .. srv:error_log())
    for _, w in ipairs{ w0, w1 } do
      local takes, late, over, rtakes, fast = w:match("^(%d+) (%d+) (%d+) (%d+) (%d+)$")
      -- both loops really ran
      assert.is_true(tonumber(takes) > 1000 and tonumber(rtakes) > 50, line)
      assert.equal(0, tonumber(late), "admitted after a daily refusal: " .. line)
      assert.equal(0, tonumber(over), "admitted beyond the daily quota: " .. line)
      assert.equal(0, tonumber(fast), "admitted faster than the rate: " .. line)
    end
    -- no round admitted more than its quota, and the quota was reached
    local full = 0
    for n in per_round:gmatch("%S+") do
      assert.is_true(tonumber(n) <= 2, line)
      if n == "2" then full = full + 1 end
    end
    assert.is_true(full >= 1, line)
    -- 2.2 s at 10/s with bursts of 40: at least one full window
    assert.is_true(tonumber(rate_admitted) >= 40, line)
  end)
end)

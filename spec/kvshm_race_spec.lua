-- The shm key-value table (csrc/kvshm.c) churned by processes at once: a
-- small table (capacity 64) where keys are set with and without ttls,
-- overwritten, deleted and left to expire, so deleted and expired tags are
-- reused all the time and probe chains run through them, while other
-- processes are killed (-9) in the middle of their own writes. Checked on
-- every operation by the processes that stay:
--   * a key of its own reads back as exactly what it last wrote while its ttl
--     runs, and as absent once deleted or expired (never unreachable, never
--     an older copy: a duplicate would surface after a delete);
--   * keys() lists each of its live keys once;
--   * set never reports the table full (never more live keys than entries);
--   * add() of a shared key has exactly one winner over all processes.
local core = require "wxhw.core"
require "wxhw.errors"
local procs = require "support.token_procs"

local sleep = core.clock.sleep
local tmp = require("support.files").fresh_path

local wait_bounded = procs.wait_bounded

local CHURN = [[
  local core = require "wxhw.core"
  local t = assert(core.kvshm.open(arg[1], 40, 16))
  local me, secs, victim = arg[2], tonumber(arg[3]), arg[4] == "victim"
  local mono = core.clock.monotonic
  math.randomseed(core.tokenstore.pid())
  -- the victims' keys all expire, so the killed ones leave nothing for long
  local TTLS = victim and { 0.01, 0.03 } or { 0, 0, 0.01, 0.03 }
  local keys, want = {}, {} -- want[k] = { v =, from =, to =, ttl = } or nil (absent)
  for i = 1, 8 do keys[i] = me .. ":" .. i end
  local ops, bad, full, won, msgs = 0, 0, 0, {}, {}
  local function fail(m) bad = bad + 1; if #msgs < 3 then msgs[#msgs + 1] = m end end
  local function live_until(w) return w.ttl == 0 and math.huge or w.from + w.ttl end
  if victim then io.write("GO\n"); io.stdout:flush() end
  local stop = mono() + secs
  while mono() < stop do
    ops = ops + 1
    local k = keys[math.random(#keys)]
    local r = math.random()
    if r < 0.45 or victim and r < 0.8 then
      local v, ttl = tostring(ops), TTLS[math.random(#TTLS)]
      local t0 = mono()
      local ok, err = t:set(k, v, ttl)
      if ok then want[k] = { v = v, from = t0, to = ttl > 0 and mono() + ttl or math.huge, ttl = ttl }
      else full = full + 1; fail("set " .. k .. ": " .. tostring(err)) end
    elseif r < 0.6 or victim then
      t:delete(k)
      want[k] = nil
    elseif r < 0.65 then
      -- one shared key per 50 ms slot (a monotonic clock is the host's):
      -- it lives past its slot, so the first add wins and every other fails
      local n = math.floor(mono() * 20)
      if t:add("s:" .. n, me, 0.3) then won[#won + 1] = n end
    elseif r < 0.7 then
      local seen = {}
      local listed = t:keys(me .. ":")
      local t1 = mono()
      for _, x in ipairs(listed) do
        if seen[x] then fail("keys() lists " .. x .. " twice") end
        seen[x] = true
      end
      for kk, w in pairs(want) do
        if t1 < live_until(w) and not seen[kk] then fail("keys() misses live " .. kk) end
      end
    else
      local w, t0 = want[k], mono()
      local got = t:get(k)
      if w == nil then
        if got ~= nil then fail(k .. " deleted, reads " .. got) end
      elseif mono() < live_until(w) then
        if got ~= w.v then fail(k .. " reads " .. tostring(got) .. ", wrote " .. w.v) end
      elseif t0 > w.to then
        if got ~= nil then fail(k .. " expired, reads " .. got) end
      end
    end
  end
  print(("RESULT %d %d %d %d"):format(ops, bad, full, #won))
  print("WON " .. table.concat(won, " "))
  for _, m in ipairs(msgs) do print("BAD " .. m) end
]]

describe("kvshm churned by racing processes #c", function()
  it("keeps every key reachable exactly once through deletes, expiry reuse and killed writers", function()
    local path = tmp()
    assert(core.kvshm.open(path, 40, 16)):close() -- capacity 64, made before the race
    local ps = {}
    for k = 1, 3 do ps[k] = procs.spawn(CHURN, path, "p" .. k, 1.0) end
    -- writers killed in the middle of their work, one after another
    local kills = 0
    for round = 1, 4 do
      local v = procs.spawn(CHURN, path, "x" .. round, 5, "victim")
      assert.equal("GO", v.line())
      sleep(0.1 + 0.03 * round)
      v.kill(); v.wait()
      kills = kills + 1
    end
    local ops, bad, full, wins, winners, out = 0, 0, 0, 0, {}, {}
    local twice = 0
    for _, p in ipairs(ps) do
      local o = wait_bounded(p, 20)
      out[#out + 1] = o
      local a, b, c, d = o:match("RESULT (%d+) (%d+) (%d+) (%d+)")
      assert.is_truthy(a, o)
      ops, bad, full, wins = ops + tonumber(a), bad + tonumber(b), full + tonumber(c), wins + tonumber(d)
      for n in (o:match("WON ([%d ]*)") or ""):gmatch("%d+") do
        if winners[n] then twice = twice + 1 end
        winners[n] = true
      end
    end
    local msg = table.concat(out, "")
    assert.equal(4, kills)
    assert.is_true(ops > 3000 and wins > 5, msg) -- the loops really ran
    assert.equal(0, bad, msg)
    assert.equal(0, full, msg)
    assert.equal(0, twice, "a shared key added twice: " .. msg)
    local t = assert(core.kvshm.open(path, 40, 16))
    assert.is_true(t:stats().recoveries <= kills)
    t:close()
    os.remove(path)
  end)
end)

-- Refresh leases taken over while their holder is still fetching, with
-- processes leasing and committing the same record at once. A lease lasts
-- 3 ms and holders sometimes take 5 ms, so leases run out and are taken over
-- all the time. Checked on every commit and read:
--   * a commit succeeds only if no lease was granted after the committer's
--     (else the older token it fetched overwrites the newer holder's: with
--     cgi-bin/token the older one dies 5 minutes later and every caller fails);
--   * (shm) the stored token never goes back to one fetched under an earlier lease.
-- Grants are recorded after they happen and checked before the commit, so a
-- recorded later grant was really granted before the commit started.
local core = require "wxhw.core"
require "wxhw.errors"
local procs = require "support.token_procs"
local redis = require "support.redis"

local sleep = core.clock.sleep
local tmp = require("support.files").fresh_path

local wait_bounded = procs.wait_bounded

local function run_all(code, n, ...)
  local ps, totals = {}, {}
  for k = 1, n do ps[k] = procs.spawn(code, ...) end
  for _, p in ipairs(ps) do
    local out = wait_bounded(p, 20)
    local nums = out:match("RESULT ([%d ]+)")
    assert.is_truthy(nums, out)
    local j = 0
    for v in nums:gmatch("%d+") do j = j + 1; totals[j] = (totals[j] or 0) + tonumber(v) end
  end
  return totals
end

describe("shm token store leases taken over by racing processes #c", function()
  it("never lets a holder whose lease was taken over commit over the newer token", function()
    local path, grants = tmp(), tmp()
    local code = [[
      local core = require "wxhw.core"
      local s = assert(core.tokenstore.shm_open(arg[1], 8))
      local g = assert(core.kvshm.open(arg[2], 20000, 8))
      local i = s:slot("hot")
      math.randomseed(core.tokenstore.pid())
      local stop = core.clock.monotonic() + 0.8
      local leases, commits, stale, last, backwards = 0, 0, 0, 0, 0
      while core.clock.monotonic() < stop do
        local ok, id = s:lease(i, 0.003)
        if ok then
          leases = leases + 1
          g:set("grant:" .. id, "1")
          if math.random() < 0.5 then core.clock.sleep(0.005) end
          local later = g:get("grant:" .. (id + 1))
          if s:commit(i, id, "L" .. id, 1e12, 0) then
            commits = commits + 1
            if later then stale = stale + 1 end
          end
        end
        local tok = s:get(i)
        local n = tok and tonumber(tok:sub(2))
        if n then
          if n < last then backwards = backwards + 1 end
          if n > last then last = n end
        end
        core.clock.sleep(0.0005)
      end
      print(("RESULT %d %d %d %d"):format(leases, commits, stale, backwards))
    ]]
    assert(core.tokenstore.shm_open(path, 8)):close() -- made before the race
    assert(core.kvshm.open(grants, 20000, 8)):close()
    local t = run_all(code, 3, path, grants)
    os.remove(path); os.remove(grants)
    local msg = table.concat(t, " ")
    assert.is_true(t[1] > 100 and t[2] > 50, msg) -- the loops really raced
    assert.equal(0, t[3], "commits after a later lease was granted: " .. msg)
    assert.equal(0, t[4], "stored token went back to an earlier lease: " .. msg)
  end)

  it("refuses the commit of a holder whose lease ran out and was taken over, once the new holder is done", function()
    local path = tmp()
    local a, b = assert(core.tokenstore.shm_open(path, 8)), assert(core.tokenstore.shm_open(path, 8))
    local i = a:slot("k")
    local _, la = a:lease(i, 0.05)
    sleep(0.08)
    local ok, lb = b:lease(i, 5)
    assert.is_true(ok)
    assert.is_number(b:commit(i, lb, "NEWER", 7200, 2))
    assert.same({ false, "lease lost" }, { a:commit(i, la, "OLDER", 7200, 1) })
    assert.equal("NEWER", (a:get(i)))
    assert.is_false(a:release(i, la))
    -- a lease that merely ran out, with nobody taking over, still commits
    local _, lc = a:lease(i, 0.05)
    sleep(0.08)
    assert.is_number(a:commit(i, lc, "LATE", 7200, 3))
    assert.equal("LATE", (b:get(i)))
    assert.is_true((b:lease(i, 5))) -- that commit released it
    a:close(); b:close()
    os.remove(path)
  end)
end)

-- The managers' cache hit on the shm store is lock-free: one atomic load of
-- the record's generation, compared with the one read (under the lock) with
-- the cached token. A writer process commits T1, T2, ... and invalidates each
-- right after, publishing "dead = i" once T_i is invalidated; two read-only
-- managers in other processes call token() all the while and check that a
-- token returned (from the cache or the store) was not dead before the call.
describe("shm store cache hits while another process commits and invalidates #c", function()
  it("never returns a token invalidated before the call", function()
    local path, pub = tmp(), tmp()
    assert(core.tokenstore.shm_open(path, 8)):close()
    assert(core.kvshm.open(pub, 8, 16)):close()
    local writer = procs.spawn([[
      local core = require "wxhw.core"
      local s = assert(core.tokenstore.shm_open(arg[1], 8))
      local g = assert(core.kvshm.open(arg[2], 8, 16))
      local i = s:slot("wxhw:race")
      local stop, n = core.clock.monotonic() + 0.6, 0
      while core.clock.monotonic() < stop do
        n = n + 1
        s:commit(i, 0, "T" .. n, 1e12, 0)
        for _ = 1, 200 do end -- the token stays valid for a moment
        s:invalidate(i, "T" .. n)
        g:set("dead", tostring(n))
      end
      print("RESULT " .. n)
    ]], path, pub)
    local reader = [[
      local core = require "wxhw.core"
      local g = assert(core.kvshm.open(arg[2], 8, 16))
      local m = assert(require("wxhw.token").new{ key = "wxhw:race", store = "shm", store_path = arg[1],
        read_only = true, refresh_ahead = 0, clock = function() return 1000 end,
        fetch = function() error("a read-only manager never fetches") end })
      local stop, reads, tokens, stale = core.clock.monotonic() + 0.6, 0, 0, 0
      while core.clock.monotonic() < stop do
        reads = reads + 1
        local dead = tonumber(g:get("dead") or "0")
        local tok = m:token()
        if tok then
          tokens = tokens + 1
          if tonumber(tok:sub(2)) <= dead then stale = stale + 1 end
        end
      end
      print(("RESULT %d %d %d"):format(reads, tokens, stale))
    ]]
    local t = run_all(reader, 2, path, pub)
    local w = wait_bounded(writer, 20)
    os.remove(path); os.remove(pub)
    local msg = table.concat(t, " ") .. " / " .. w
    assert.is_true(tonumber(w:match("RESULT (%d+)") or 0) > 1000, msg)
    assert.is_true(t[1] > 10000 and t[2] > 1000, msg) -- the loops really raced
    assert.equal(0, t[3], "returned a token invalidated before the call: " .. msg)
  end)
end)

describe("redis token store leases taken over by racing processes #c", function()
  local r
  setup(function() r = redis.start() end)
  teardown(function() if r then r.stop() end end)

  it("never lets a holder whose lease was taken over commit over the newer token", function()
    local code = [[
      local core = require "wxhw.core"
      local st = assert(require("wxhw.store.redis").new{ port = tonumber(arg[1]) })
      math.randomseed(core.tokenstore.pid())
      local stop = core.clock.monotonic() + 0.8
      local leases, commits, stale = 0, 0, 0
      while core.clock.monotonic() < stop do
        local id = st:lease("wxhw:race", 0.003)
        if id then
          leases = leases + 1
          local pos = assert(st.conn:command("RPUSH", "grants", id))
          if math.random() < 0.5 then core.clock.sleep(0.005) end
          local len = assert(st.conn:command("LLEN", "grants"))
          if st:commit("wxhw:race", id, "L" .. pos, 1e12, 0) then
            commits = commits + 1
            if len > pos then stale = stale + 1 end
          end
        end
        core.clock.sleep(0.0005)
      end
      print(("RESULT %d %d %d"):format(leases, commits, stale))
    ]]
    local t = run_all(code, 3, r.port)
    local msg = table.concat(t, " ")
    assert.is_true(t[1] > 100 and t[2] > 50, msg)
    assert.equal(0, t[3], "commits after a later lease was granted: " .. msg)
  end)

  it("refuses the commit of a holder whose lease ran out and was taken over, once the new holder is done", function()
    local store_mod = require "wxhw.store.redis"
    local a, b = assert(store_mod.new{ port = r.port }), assert(store_mod.new{ port = r.port })
    local la = assert(a:lease("wxhw:k", 0.05))
    sleep(0.08)
    local lb = assert(b:lease("wxhw:k", 5))
    assert.is_number(b:commit("wxhw:k", lb, "NEWER", 7200, 2))
    assert.same({ false, "lease lost" }, { a:commit("wxhw:k", la, "OLDER", 7200, 1) })
    assert.equal("NEWER", a:get("wxhw:k").token)
    -- a lease that merely ran out, with nobody taking over, still commits
    local lc = assert(a:lease("wxhw:k", 0.05))
    sleep(0.08)
    assert.is_number(a:commit("wxhw:k", lc, "LATE", 7200, 3))
    assert.equal("LATE", b:get("wxhw:k").token)
    a:close(); b:close()
  end)

  -- A call that times out may still run once the server gets to it; sending
  -- it again counted a forced refresh twice (and found its own lease taken).
  it("does not send a command again after a timeout (a busy server runs both)", function()
    local store_mod = require "wxhw.store.redis"
    r.cli("FLUSHALL")
    local slow = assert(store_mod.new{ port = r.port, timeout = 0.1 })
    local probe = assert(core.tokenstore.redis_connect{ port = r.port, timeout = 0.02 })
    assert.is_true(slow:force_permit("wxhw:warm", 1000, 5, 20, 0)) -- the script is loaded
    local blocker = procs.spawn([[
      local c = assert(require("wxhw.core").tokenstore.redis_connect{ port = tonumber(arg[1]), timeout = 5 })
      io.write("GO\n"); io.stdout:flush()
      print(c:command("EVAL", "local t0 = redis.call('TIME') local s0 = t0[1] * 1e6 + t0[2] " ..
        "while true do local t = redis.call('TIME') if t[1] * 1e6 + t[2] - s0 > 600000 then return 1 end end", 0))
    ]], r.port)
    assert.equal("GO", blocker.line())
    local busy = false
    for _ = 1, 100 do -- until the script runs: a PING then times out
      if probe:command("PING") == nil then busy = true; break end
      sleep(0.002)
    end
    local ok, err = slow:force_permit("wxhw:k", 1000, 5, 20, 0)
    if busy then
      assert.is_nil(ok)
      assert.is_nil(err.closed)
    end
    assert.matches("^1", wait_bounded(blocker, 10))
    assert.equal("1", r.cli("HGET", "wxhw:k:force", "count"))
    -- and the connection heals
    assert.is_true(slow:force_permit("wxhw:k", 1000, 5, 20, 0))
    probe:close(); slow:close()
  end)
end)

-- Inside nginx every Redis store of a worker draws connections from the
-- cosocket pool, and a pooled connection keeps the SELECT (and AUTH) of the
-- store that opened it: a store on db 0 must not be handed one on db 1.
describe("redis stores on two dbs in one nginx worker #nosan #lua54", function()
  local nginx = require "support.nginx"
  local r, srv
  setup(function()
    r = redis.start()
    srv = assert(nginx.start{
      server_block = ([[
        location = /pool {
          content_by_lua_block {
            local st = require "wxhw.store.redis"
            local one = assert(st.new{ port = %d, db = 1 })
            local zero = assert(st.new{ port = %d })
            assert(one:commit("wxhw:pool", nil, "IN-DB1", 1e12, 0))
            local out = {}
            for _ = 1, 3 do out[#out + 1] = tostring(zero:get("wxhw:pool").token) end
            assert(zero:commit("wxhw:pool", nil, "IN-DB0", 1e12, 0))
            out[#out + 1] = tostring(one:get("wxhw:pool").token)
            ngx.print(table.concat(out, " "))
          }
        }]]):format(r.port, r.port),
    })
  end)
  teardown(function()
    if srv then srv:stop() end
    if r then r.stop() end
  end)

  it("never reuses a pooled connection on another db", function()
    local body = require("socket.http").request(srv.base_url .. "/pool")
    assert.equal("false false false IN-DB1", body, tostring(body) .. srv:error_log())
    assert.equal("IN-DB1", r.cli("-n", "1", "HGET", "wxhw:pool", "access_token"))
    assert.equal("IN-DB0", r.cli("HGET", "wxhw:pool", "access_token"))
  end)
end)

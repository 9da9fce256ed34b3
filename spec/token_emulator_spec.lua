-- Token management end to end: managers + the request pipeline (wxhw.client)
-- against the emulator, with real OS processes sharing the shm store and a
-- real Redis standing in for a store shared by several hosts.
local token = require "wxhw.token"
local client = require "wxhw.client"
local emulator = require "support.emulator"
local redis = require "support.redis"
local procs = require "support.token_procs"

local tmp = require("support.files").fresh_path

-- A caller process: `per` API calls (getsnticket, token injected by the
-- pipeline) per phase, 3 phases; between phases the parent advances the
-- emulator clock past the token's expiry.
local CALLER = [[
local token = require "wxhw.token"
local client = require "wxhw.client"
local core = require "wxhw.core"
local base, kind, where, phasedir, per, prefix, source = arg[1], arg[2], arg[3], arg[4], tonumber(arg[5]), arg[6], arg[7]
local store = kind == "shm" and assert(token.store("shm", { path = where }))
  or assert(token.store("redis", { port = tonumber(where) }))
local mgr = assert(token.new{ source = source, appid = "wxa000000000000001", secret = "a0000000000000000000000000000001",
                              base_url = base, store = store, prefix = prefix })
local c = assert(client.new{ base_urls = { mp = base }, token_provider = mgr })
local errs, sn = 0, "SN" .. core.tokenstore.pid()
for phase = 1, 3 do
  if phase > 1 then
    while not io.open(phasedir .. "/go" .. phase) do core.clock.sleep(0.005) end
  end
  for _ = 1, per do
    local data, err = c:call{ product = "mp", method = "POST", path = "/wxa/getsnticket", token = true,
                              json = { sn = sn, model_id = "emuModelId000001" } }
    if not data then
      errs = errs + 1
      if errs < 5 then io.write("ERR ", tostring(err), "\n") end
    end
  end
  io.write("PHASE ", phase, "\n"); io.stdout:flush()
end
io.write("DONE errors=", errs, "\n")
]]

local function run_rotations(e, kind, where, nprocs, per, source)
  local phasedir = tmp()
  os.execute("mkdir -p " .. phasedir)
  local prefix = "spec" .. math.random(1e6)
  e.control("/__emulator/counters/reset", {})
  local ps = {}
  for i = 1, nprocs do ps[i] = procs.spawn(CALLER, e.base_url, kind, where, phasedir, per, prefix, source) end
  local outs = {}
  for phase = 1, 3 do
    for i, p in ipairs(ps) do
      while true do
        local l = p.line()
        assert(l, "caller exited early: " .. tostring(outs[i]))
        outs[i] = (outs[i] or "") .. l .. "\n"
        if l == "PHASE " .. phase then break end
      end
    end
    if phase < 3 then
      e.control("/__emulator/clock", { advance = 7200 })
      io.open(phasedir .. "/go" .. (phase + 1), "w"):close()
    end
  end
  for i, p in ipairs(ps) do outs[i] = outs[i] .. p.wait() end
  os.execute("rm -rf " .. phasedir)
  return outs, e.control("/__emulator/counters").token_fetches
end

describe("token management against the emulator", function()
  local e, r, path
  setup(function()
    e = emulator.start{ seed = 5 }
    r = redis.start()
  end)
  teardown(function()
    if e then e.stop() end
    if r then r.stop() end
  end)
  before_each(function() path = tmp() end)
  after_each(function() os.remove(path) end)

  local appid = "wxa000000000000001"
  local secret = "a0000000000000000000000000000001"

  it("8 processes x 2000 calls across 3 rotations (shm): 3 fetches, no token errors", function()
    local outs, fetches = run_rotations(e, "shm", path, 8, 667, "token")
    for _, out in ipairs(outs) do assert.matches("DONE errors=0\n", out) end
    assert.equal(3, fetches["token:" .. appid])
    assert.is_true(e.control("/__emulator/counters").endpoints["/wxa/getsnticket"] >= 8 * 667 * 3)
  end)

  it("the same with Redis-backed managers standing in for separate hosts", function()
    local outs, fetches = run_rotations(e, "redis", r.port, 4, 334, "token")
    for _, out in ipairs(outs) do assert.matches("DONE errors=0\n", out) end
    assert.equal(3, fetches["token:" .. appid])
  end)

  local function pair(source, extra)
    local o = { source = source, appid = appid, secret = secret, base_url = e.base_url, store = "memory" }
    for k, v in pairs(extra or {}) do o[k] = v end
    local mgr = assert(token.new(o))
    return mgr, assert(client.new{ base_urls = { mp = e.base_url }, token_provider = mgr })
  end

  local function snticket(c)
    return c:call{ product = "mp", method = "POST", path = "/wxa/getsnticket", token = true,
                   json = { sn = "SN1", model_id = "emuModelId000001" } }
  end

  it("early invalidation: one refresh, one retry, no loop", function()
    local mgr, c = pair("token")
    assert.truthy(snticket(c))
    e.control("/__emulator/counters/reset", {})
    e.control("/__emulator/tokens/invalidate", { appid = appid })
    local retries = 0
    c:hook("on_retry", function() retries = retries + 1 end)
    assert.truthy(snticket(c))
    assert.equal(1, retries)
    assert.equal(1, e.control("/__emulator/counters").token_fetches["token:" .. appid])
    -- a token the platform keeps rejecting: exactly one refresh and one retry, then the error
    e.control("/__emulator/counters/reset", {})
    e.control("/__emulator/faults", { path = "/wxa/getsnticket", errcode = 40001 })
    local data, err = snticket(c)
    e.control("/__emulator/faults", nil, "DELETE")
    assert.is_nil(data)
    assert.equal(40001, err.errcode)
    local counters = e.control("/__emulator/counters")
    assert.equal(1, counters.token_fetches["token:" .. appid])
    assert.equal(2, counters.endpoints["/wxa/getsnticket"])
    assert.truthy(tostring(mgr))
  end)

  it("stable_token: an errcode refreshes in normal mode only", function()
    local mgr, c = pair("stable_token")
    assert.truthy(snticket(c))
    local before = e.control("/__emulator/counters").token_fetches
    e.control("/__emulator/tokens/invalidate", { appid = appid })
    assert.truthy(snticket(c))
    local after = e.control("/__emulator/counters").token_fetches
    assert.equal((before["stable:" .. appid] or 0) + 1, after["stable:" .. appid])
    -- explicit force: once, then refused locally for 30 s
    assert.truthy(mgr:force_refresh())
    local tok, err = mgr:force_refresh()
    assert.is_nil(tok)
    assert.equal("quota", err.kind)
  end)

  it("a wrong secret: one fetch, a clear error, no retry storm", function()
    e.control("/__emulator/counters/reset", {})
    local mgr, c = pair("token", { secret = "wrong-secret" })
    for _ = 1, 20 do
      local data, err = snticket(c)
      assert.is_nil(data)
      assert.equal(40125, err.errcode)
      assert.not_matches("wrong%-secret", tostring(err))
    end
    local counters = e.control("/__emulator/counters")
    assert.equal(1, counters.endpoints["/cgi-bin/token"])
    assert.is_nil(counters.endpoints["/wxa/getsnticket"])
    assert.not_matches("wrong%-secret", tostring(mgr))
  end)

  it("WeCom gettoken through the same manager", function()
    local creds = e.credentials.wecom
    local mgr = assert(token.new{ source = "wecom", corpid = creds.corpid, corpsecret = creds.corpsecret,
                                  base_url = e.base_url, store = "memory" })
    local tok = assert(mgr:token())
    assert.equal(tok, mgr:token())
    assert.matches("^wxhw:wecom:" .. creds.corpid .. ":", mgr.key)
    -- a wrong corpsecret answers 40001: one request, never a token-refresh loop
    e.control("/__emulator/counters/reset", {})
    local bad = assert(token.new{ source = "wecom", corpid = creds.corpid, corpsecret = "wrong",
                                  base_url = e.base_url, store = "memory" })
    for _ = 1, 10 do
      local t, err = bad:token()
      assert.is_nil(t)
      assert.equal(40001, err.errcode)
    end
    assert.equal(1, e.control("/__emulator/counters").endpoints["/cgi-bin/gettoken"])
  end)

  it("WeCom openhw model token (latest model_ticket) and device token (parent token retried once)", function()
    local hw = e.credentials.openhw
    local tickets = 0
    local model = assert(token.new{ source = "model_token", model_id = hw.model_id, model_secret = hw.model_secret,
      model_ticket = function() tickets = tickets + 1; return e.control("/__emulator/openhw/model_ticket").model_ticket end,
      base_url = e.base_url, store = "memory" })
    local c = assert(client.new{ base_urls = { wecom = e.base_url } })
    local mtok = assert(model:token())
    local data = assert(c:call{ product = "wecom", method = "POST", path = "/cgi-bin/openhw/model/register_sn",
                                query = { model_access_token = mtok }, json = { device_sn = "SPECSN1" } })
    assert.matches("^https://", data.qr_code)
    assert.equal(1, tickets)
    -- device token: the model token was invalidated early; the source refreshes it once
    local dev = assert(token.new{ source = "device_token", device_sn = "SPECSN1", device_secret = "nope",
                                  model_token = model, base_url = e.base_url, store = "memory" })
    e.control("/__emulator/counters/reset", {})
    e.control("/__emulator/tokens/invalidate", { access_token = mtok })
    local tok, err = dev:token()
    assert.is_nil(tok)
    assert.equal(40001, err.errcode)               -- the wrong device_secret, after one model refresh
    assert.matches("device_secret", err.errmsg)
    local counters = e.control("/__emulator/counters")
    assert.equal(1, counters.token_fetches["model:" .. hw.model_id])
    assert.equal(2, counters.endpoints["/cgi-bin/openhw/get_device_token"])
    assert.matches("^wxhw:device_token:SPECSN1:", dev.key)
    assert.not_equal(mtok, model:token())
  end)

  it("bounds fetches while Redis is down and says so", function()
    local store = assert(token.store("redis", { port = r.port }))
    local fetches = {}
    local mgr, c = pair("token", { store = store, prefix = "down" .. math.random(1e6),
                                   host_store = assert(token.store("shm", { path = path })),
                                   store_down_interval = 30, store_retry = 0.2,
                                   on_token_refresh = function(i) fetches[#fetches + 1] = i.reason .. " " .. i.store end })
    assert.truthy(snticket(c))
    r.stop()
    e.control("/__emulator/counters/reset", {})
    -- the process keeps its token while the store is down
    for _ = 1, 20 do assert.truthy(snticket(c)) end
    assert.is_nil(e.control("/__emulator/counters").token_fetches["token:" .. appid])
    -- a rotation while down: one fetch per host and interval
    e.control("/__emulator/tokens/invalidate", { appid = appid })
    assert.truthy(snticket(c))
    local fetched = mgr:token()
    -- the token just fetched is kept within the interval (no other can be had)
    e.control("/__emulator/tokens/invalidate", { appid = appid })
    local data, err = snticket(c)
    assert.is_nil(data)
    assert.equal(40001, err.errcode)
    assert.equal(fetched, mgr:token())
    assert.equal(1, e.control("/__emulator/counters").token_fetches["token:" .. appid])
    assert.same({ "missing redis", "store_down redis" }, fetches)
    -- back: the store had nothing newer (restarted empty), so it gets this host's token
    r.restart()
    require("wxhw.core").clock.sleep(0.3)
    assert.equal(fetched, mgr:token())
    assert.equal(fetched, r.cli("HGET", mgr.key, "access_token"))
    -- which the platform had voided: one refresh through the store
    assert.truthy(snticket(c))
    assert.equal(2, e.control("/__emulator/counters").token_fetches["token:" .. appid])
  end)

  it("says why it does not fetch again within the interval while the store is down", function()
    local store = assert(token.store("redis", { port = r.port }))
    local hs = assert(token.store("shm", { path = path }))
    local mgr, c = pair("token", { store = store, prefix = "down" .. math.random(1e6), host_store = hs,
                                   store_down_interval = 30, store_retry = 0.2 })
    assert.truthy(snticket(c))
    r.stop()
    e.control("/__emulator/counters/reset", {})
    e.control("/__emulator/tokens/invalidate", { appid = appid })
    assert.truthy(snticket(c))
    -- another process of this host fetched earlier in the interval and that token is gone:
    -- a clear error, no fetch
    assert.is_true(hs:invalidate(mgr.key .. "#down", mgr:token()))
    local tok, err = token.new{ source = "token", appid = appid, secret = secret, base_url = e.base_url,
      store = store, key = mgr.key, host_store = hs, store_down_interval = 30 }:token()
    assert.is_nil(tok)
    assert.equal("store", err.kind)
    assert.matches("token store unavailable %(.*%); upstream token fetches are limited to one per 30 s per host",
                   err.message)
    assert.equal(1, e.control("/__emulator/counters").token_fetches["token:" .. appid])
    r.restart()
  end)
end)

-- The emulator's token endpoints and control API, driven with plain HTTP.
local emulator = require "support.emulator"
local periods = require "support.quota_periods"
local cjson = require "cjson"

describe("emulator tokens", function()
  local e, mp, corp
  setup(function()
    e = emulator.start{ seed = 11 }
    mp = e.credentials.mp
    corp = e.credentials.wecom
  end)
  teardown(function() if e then e.stop() end end)
  before_each(function() e.control("/__emulator/reset", {}) end)

  local function token()
    return e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret)
  end
  local function stable(force)
    return e.json("POST", "/cgi-bin/stable_token", { grant_type = "client_credential", appid = mp.appid,
      secret = mp.secret, force_refresh = force or false })
  end
  local function valid(tok)
    for _, t in ipairs(e.control("/__emulator/tokens").tokens) do
      if t.access_token == tok then return t.valid end
    end
    return false
  end

  it("issues a 7200 s token and counts the fetch", function()
    local r, status = token()
    assert.equal(200, status)
    assert.equal(7200, r.expires_in)
    assert.is_true(#r.access_token >= 100 and #r.access_token <= 512)
    local c = e.control("/__emulator/counters")
    assert.equal(1, c.token_fetches["token:" .. mp.appid])
    assert.equal(1, c.endpoints["/cgi-bin/token"])
  end)

  it("keeps the previous token for exactly 5 minutes after a new fetch", function()
    local a = token().access_token
    local b = token().access_token
    assert.not_equal(a, b)
    assert.is_true(valid(a)); assert.is_true(valid(b))
    e.control("/__emulator/clock", { advance = 299 })
    assert.is_true(valid(a))
    e.control("/__emulator/clock", { advance = 2 })
    assert.is_false(valid(a)); assert.is_true(valid(b))
  end)

  it("a third fetch kills the first token at once", function()
    local a = token().access_token
    token(); token()
    assert.is_false(valid(a))
  end)

  it("expires tokens after 7200 s of emulator time", function()
    local a = token().access_token
    e.control("/__emulator/clock", { advance = 7199 })
    assert.is_true(valid(a))
    e.control("/__emulator/clock", { advance = 2 })
    assert.is_false(valid(a))
  end)

  it("rejects bad credentials with the documented errcodes", function()
    local r = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=wx0000000000000bad&secret=x")
    assert.equal(40013, r.errcode)
    r = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=wrong")
    assert.equal(40125, r.errcode)
    r = e.json("GET", "/cgi-bin/token?grant_type=password&appid=" .. mp.appid .. "&secret=" .. mp.secret)
    assert.equal(40002, r.errcode)
    assert.is_nil(r.access_token)
  end)

  describe("stable_token", function()
    it("returns the same token in normal mode until 5 minutes before expiry", function()
      local a = stable()
      local b = stable()
      assert.equal(a.access_token, b.access_token)
      e.control("/__emulator/clock", { advance = 7200 - 301 })
      local c = stable()
      assert.equal(a.access_token, c.access_token)
      assert.is_true(c.expires_in <= 301 and c.expires_in >= 300)
      e.control("/__emulator/clock", { advance = 2 })
      local d = stable()
      assert.not_equal(a.access_token, d.access_token)
      assert.equal(7200, d.expires_in)
      assert.is_true(valid(a.access_token)) -- platform rotation keeps the old one to its expiry
    end)

    it("force_refresh invalidates the previous token, 30 s apart, 20 a day", function()
      periods.fresh_emulator_day(e) -- the test spans 10 emulated minutes
      local a = stable().access_token
      local b = stable(true)
      assert.not_equal(a, b.access_token)
      assert.is_false(valid(a))
      -- less than 30 s later the call "does not refresh" (no error documented):
      -- the current token, unchanged and still valid, not counted in the 20
      e.control("/__emulator/clock", { advance = 29 })
      local c = stable(true)
      assert.is_nil(c.errcode)
      assert.equal(b.access_token, c.access_token)
      assert.is_true(valid(b.access_token))
      assert.is_true(c.expires_in <= 7200 - 29 and c.expires_in >= 7200 - 30)
      e.control("/__emulator/clock", { advance = 1 })
      assert.not_equal(b.access_token, stable(true).access_token) -- 30 s after the last refresh: refreshes
      for _ = 3, 20 do
        e.control("/__emulator/clock", { advance = 30 })
        local r = stable(true)
        assert.is_string(r.access_token)
      end
      e.control("/__emulator/clock", { advance = 30 })
      assert.equal(45009, stable(true).errcode)
    end)

    it("is isolated from /cgi-bin/token", function()
      local s = stable().access_token
      token(); token(); token()
      assert.is_true(valid(s))
    end)

    it("wants POST with a JSON body", function()
      local r = e.json("GET", "/cgi-bin/stable_token")
      assert.equal(43002, r.errcode)
      r = e.json("POST", "/cgi-bin/stable_token", "")
      assert.equal(44002, r.errcode)
      r = e.json("POST", "/cgi-bin/stable_token", "{not json")
      assert.equal(47001, r.errcode)
      r = e.json("POST", "/cgi-bin/stable_token", { grant_type = "client_credential", appid = mp.appid,
        secret = mp.secret, force_refresh = "yes" })
      assert.equal(47001, r.errcode)
    end)
  end)

  describe("WeCom gettoken", function()
    it("returns errcode 0 and the same token within validity", function()
      local path = "/cgi-bin/gettoken?corpid=" .. corp.corpid .. "&corpsecret=" .. corp.corpsecret
      local a = e.json("GET", path)
      assert.equal(0, a.errcode)
      assert.equal(7200, a.expires_in)
      e.control("/__emulator/clock", { advance = 100 })
      local b = e.json("GET", path)
      assert.equal(a.access_token, b.access_token)
      assert.equal(7100, b.expires_in)
      e.control("/__emulator/clock", { advance = 7100 })
      assert.not_equal(a.access_token, e.json("GET", path).access_token)
    end)
    it("rejects an unknown corp and a wrong secret", function()
      assert.equal(40013, e.json("GET", "/cgi-bin/gettoken?corpid=nope&corpsecret=x").errcode)
      assert.equal(40001, e.json("GET", "/cgi-bin/gettoken?corpid=" .. corp.corpid .. "&corpsecret=x").errcode)
    end)
  end)

  describe("fault injection", function()
    it("answers an injected errcode for count requests, then recovers", function()
      e.control("/__emulator/faults", { path = "/cgi-bin/token", count = 2, errcode = -1 })
      assert.equal(-1, token().errcode)
      assert.equal(-1, token().errcode)
      assert.is_string(token().access_token)
      assert.equal(2, e.control("/__emulator/counters").faults["/cgi-bin/token"])
    end)

    it("skips the first N matches", function()
      e.control("/__emulator/faults", { path = "/cgi-bin/token", skip = 1, count = 1, errcode = 45011 })
      assert.is_string(token().access_token)
      assert.equal(45011, token().errcode)
      assert.is_string(token().access_token)
    end)

    it("injects an HTTP status with Retry-After", function()
      e.control("/__emulator/faults", { path = "/cgi-bin/*", count = 1, http_status = 503, retry_after = 3 })
      local status, _, h = e.request("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret)
      assert.equal(503, status)
      assert.equal("3", h["retry-after"])
    end)

    it("delays a response", function()
      local socket = require "socket"
      e.control("/__emulator/faults", { path = "/cgi-bin/token", count = 1, delay_ms = 300 })
      local t0 = socket.gettime()
      assert.is_string(token().access_token)
      assert.is_true(socket.gettime() - t0 >= 0.29)
    end)

    it("resets the connection", function()
      e.control("/__emulator/faults", { path = "/cgi-bin/token", count = 1, reset = true })
      local status = e.request("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret)
      assert.is_not.equal(200, status)
      assert.is_string(token().access_token)
    end)

    it("truncates the body", function()
      e.control("/__emulator/faults", { path = "/cgi-bin/token", count = 1, truncate = true })
      local socket = require "socket"
      local c = socket.connect("127.0.0.1", e.port)
      c:settimeout(5)
      c:send("GET /cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      local raw = c:receive("*a")
      c:close()
      local len = tonumber(raw:match("Content%-Length: (%d+)"))
      local body = raw:match("\r\n\r\n(.*)$")
      assert.is_true(#body < len)
      assert.is_nil((require("cjson.safe").decode(body)))
    end)

    it("errcode 40001 invalidates the token it was called with", function()
      local a = token().access_token
      e.control("/__emulator/faults", { path = "/cgi-bin/token", count = 1, errcode = 40001 })
      e.request("GET", "/cgi-bin/token?access_token=" .. a .. "&grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret)
      assert.is_false(valid(a))
    end)

    it("rejects a malformed fault", function()
      local status = e.request("POST", "/__emulator/faults", cjson.encode{ path = "/x", errcode = "1" })
      assert.equal(400, status)
      status = e.request("POST", "/__emulator/faults", cjson.encode{ errcode = 1 })
      assert.equal(400, status)
    end)
  end)

  it("serves many requests on one keep-alive connection", function()
    local socket = require "socket"
    local c = socket.connect("127.0.0.1", e.port)
    c:settimeout(5)
    local req = "GET /cgi-bin/gettoken?corpid=" .. corp.corpid .. "&corpsecret=" .. corp.corpsecret .. " HTTP/1.1\r\nHost: x\r\n\r\n"
    -- pipelined: three requests in one write
    c:send(req .. req .. req)
    for _ = 1, 3 do
      local line = c:receive("*l")
      assert.equal("HTTP/1.1 200 OK", line)
      local len
      repeat
        local h = c:receive("*l")
        len = len or tonumber(h:match("^Content%-Length: (%d+)"))
      until h == ""
      assert.equal(0, cjson.decode((c:receive(len))).errcode)
    end
    c:close()
  end)

  it("refuses malformed HTTP without crashing", function()
    local socket = require "socket"
    local c = socket.connect("127.0.0.1", e.port)
    c:settimeout(5)
    c:send("BLAH\r\n\r\n")
    local line = c:receive("*l")
    c:close()
    assert.equal("HTTP/1.1 400 Bad Request", line)
    assert.is_true(e.control("/__emulator/health").ok)
  end)
end)

describe("emulator daily token quota", function()
  local e, mp
  setup(function()
    e = emulator.start{ seed = 12 }
    mp = e.credentials.mp
  end)
  teardown(function() if e then e.stop() end end)

  it("answers 45009 after the daily /cgi-bin/token quota until clear_quota or the next day", function()
    local url = "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret
    periods.fresh_emulator_day(e)
    e.control("/__emulator/tokens/limits", { token_daily = 3 })
    local tok
    for _ = 1, 3 do tok = e.json("GET", url).access_token; assert.is_string(tok) end
    assert.equal(45009, e.json("GET", url).errcode)
    assert.equal(40013, e.json("POST", "/cgi-bin/clear_quota?access_token=" .. tok, { appid = "wx0000000000000000" }).errcode)
    assert.equal(0, e.json("POST", "/cgi-bin/clear_quota?access_token=" .. tok, { appid = mp.appid }).errcode)
    for _ = 1, 3 do assert.is_string(e.json("GET", url).access_token) end
    assert.equal(45009, e.json("GET", url).errcode)
    e.control("/__emulator/clock", { advance = 86400 })
    assert.is_string(e.json("GET", url).access_token)
    local log = e.control("/__emulator/requests").requests
    assert.equal("/cgi-bin/token", log[#log].path)
    assert.equal(200, log[#log].status)
  end)
end)

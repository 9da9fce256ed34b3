-- wxhw.client against a real nginx playing WeChat on loopback.
local client_mod = require "wxhw.client"
local errors = require "wxhw.errors"
local cjson = require "cjson"
local http_server = require "support.http_server"
local nginx = require "support.nginx"
local socket = require "socket"
local periods = require "support.quota_periods"

-- WeChat-shaped endpoints: token check, fixed errcodes, a body without errcode.
local WX = [=[
    location = /cgi-bin/need_token {
      content_by_lua_block {
        local d = ngx.shared.wxhw_test
        d:incr("calls:" .. (ngx.var.arg_key or ""), 1, 0)
        ngx.header["Content-Type"] = "application/json"
        if ngx.var.arg_access_token == "good" then
          ngx.print('{"errcode":0,"errmsg":"ok","seen":"' .. ngx.var.arg_access_token .. '"}')
        else
          ngx.print('{"errcode":' .. (ngx.var.arg_code or "40001") .. ',"errmsg":"invalid credential, access_token is invalid or not latest rid: 6571-abcd-01"}')
        end
      }
    }
    location = /cgi-bin/errcode {
      content_by_lua_block {
        ngx.shared.wxhw_test:incr("calls:" .. (ngx.var.arg_key or ""), 1, 0)
        ngx.print('{"errcode":' .. ngx.var.arg_code .. ',"errmsg":"code ' .. ngx.var.arg_code .. ' rid: r-' .. ngx.var.arg_code .. '"}')
      }
    }
    location = /cgi-bin/nocode {
      default_type application/json;
      return 200 '{"ticket":"T","product_id":12345678901234567890,"list":[{"MsgId":23456789012345678901}]}';
    }
    location = /cgi-bin/redirect {
      content_by_lua_block {
        ngx.shared.wxhw_test:incr("calls:" .. (ngx.var.arg_key or ""), 1, 0)
        local who = ngx.var.arg_userinfo and ("proxy:" .. (ngx.var.arg_access_token or "") .. "@") or ""
        ngx.header["Location"] = "https://" .. who .. "login.example/portal" .. (ngx.var.arg_long and ("/x"):rep(5000) or "")
          .. "?next=" .. (ngx.var.arg_access_token or "")
        ngx.status = tonumber(ngx.var.arg_status) or 302
        ngx.print(ngx.var.arg_json and '{"errcode":0,"errmsg":"ok"}' or "")
      }
    }
    location = /wxa/business/runtime/adddevice {
      content_by_lua_block {
        ngx.shared.wxhw_test:incr("calls:adddevice", 1, 0)
        ngx.header["Location"] = "http://proxy.example/adddevice"
        ngx.status = 307
      }
    }
    location = /cgi-bin/empty {
      content_by_lua_block {
        ngx.shared.wxhw_test:incr("calls:" .. (ngx.var.arg_key or ""), 1, 0)
        ngx.status = tonumber(ngx.var.arg_status) or 200
        ngx.header["Content-Length"] = "0"
      }
    }
    location = /v3/pay/thing {
      content_by_lua_block {
        ngx.status = tonumber(ngx.var.arg_status) or 200
        ngx.header["Request-ID"] = "pay-req-1"
        if ngx.status >= 400 then ngx.print('{"code":"PARAM_ERROR","message":"bad offset"}')
        else ngx.print('{"total_count":12345678901234567890}') end
      }
    }
]=]

local function provider(first, second)
  return {
    current = first, invalidated = {}, calls = 0,
    token = function(self) self.calls = self.calls + 1; return self.current end,
    invalidate = function(self, failed)
      self.invalidated[#self.invalidated + 1] = failed
      if failed == self.current and second then self.current = second end
    end,
  }
end

describe("wxhw.client", function()
  local srv, base

  setup(function()
    srv = assert(http_server.start{ tls = false, server_block = WX })
    base = srv.base_url
  end)
  teardown(function() if srv then srv:stop() end end)

  local function calls(key)
    local c = require("wxhw.http").new{}
    local n = tonumber(assert(c:request{ url = base .. "/calls?key=" .. key }).body)
    c:close()
    return n
  end

  local function new(o)
    o = o or {}
    o.base_urls = o.base_urls or { mp = base, wecom = base, pay = base }
    o.retry = o.retry or { base_delay = 0.01, max_delay = 0.05 }
    return assert(client_mod.new(o))
  end

  local uniq = 0
  local function key()
    uniq = uniq + 1
    return ("k%d_%d"):format(os.time(), uniq) .. math.random(1e6)
  end

  describe("answers that are not API answers", function()
    it("a redirect's message carries neither its userinfo nor an unbounded path", function()
      local c = new{ token_provider = provider("SECRET-TOKEN") }
      local _, err = c:call{ product = "mp", path = "/cgi-bin/redirect", token = true,
                             query = { key = key(), userinfo = 1, long = 1 } }
      assert.equal("redirect", err.reason)
      assert.falsy(tostring(err):find("SECRET", 1, true))
      assert.matches("redirect to https://login%.example/portal/x/x", err.message)
      assert.is_true(#err.message < 400, #err.message)
    end)

    it("a 3xx is an error, never retried, without the redirect's query", function()
      for _, st in ipairs{ 301, 302, 303, 307, 308 } do
        local k = key()
        local c = new{ token_provider = provider("SECRET-TOKEN") }
        local _, err = c:call{ product = "mp", method = "POST", path = "/cgi-bin/redirect", token = true,
                               query = { key = k, status = st, json = 1 }, json = { a = 1 } }
        assert.equal("http", err.kind)
        assert.equal("redirect", err.reason)
        assert.equal(st, err.http_status)
        assert.matches("HTTP " .. st .. " redirect to https://login.example/portal is not an API answer", err.message)
        assert.falsy(tostring(err):find("SECRET", 1, true))
        assert.equal(1, calls(k))
        -- not even an idempotent GET is retried: a redirect does not go away
        k = key()
        _, err = c:call{ product = "mp", path = "/cgi-bin/redirect", token = true, query = { key = k, status = st } }
        assert.equal("redirect", err.reason)
        assert.equal(1, calls(k))
      end
    end)

    it("a 2xx with an empty body is an error: retried only when idempotent", function()
      local c = new{ retry = { attempts = 3, base_delay = 0.01, max_delay = 0.02 } }
      local k = key()
      local _, err = c:call{ product = "mp", method = "POST", path = "/cgi-bin/empty", query = { key = k }, json = {} }
      assert.equal("http", err.kind)
      assert.equal("empty_body", err.reason)
      assert.equal(200, err.http_status)
      assert.equal(1, calls(k)) -- a write is not sent twice blindly
      k = key()
      _, err = c:call{ product = "mp", path = "/cgi-bin/empty", query = { key = k } }
      assert.equal("empty_body", err.reason)
      assert.equal(3, calls(k))
      -- Pay's documented 204 No Content stays a success; a Pay 200 without a body does not
      assert.same({}, assert(c:call{ product = "pay", path = "/cgi-bin/empty", query = { key = key(), status = 204 } }))
      _, err = c:call{ product = "pay", path = "/cgi-bin/empty", query = { key = key() } }
      assert.equal("empty_body", err.reason)
    end)

    it("wmpf:add_devices behind a redirecting proxy reports nothing added", function()
      local c = new{ base_urls = { wmpf = base }, token_provider = provider("T") }
      local res, err = require("wxhw.wmpf").new(c):add_devices{ product_id = 100001, model_name = "M",
        device_ids = { "D1", "D2", "D3" }, chunk = 2 }
      assert.is_nil(res)
      assert.equal("redirect", err.reason)
      assert.equal(307, err.http_status)
      assert.equal(0, err.added)
      assert.equal(1, err.chunk)
      assert.equal(1, calls("adddevice"))
    end)
  end)

  describe("JSON", function()
    it("treats a missing errcode as 0 and keeps big integers exact", function()
      local c = new()
      local r = assert(c:call{ product = "mp", path = "/cgi-bin/nocode" })
      assert.equal("T", r.ticket)
      assert.equal("12345678901234567890", r.product_id)
      assert.equal("23456789012345678901", r.list[1].MsgId)
    end)

    it("decodes around strings, escapes and floats", function()
      local d = assert(client_mod.json_decode(
        '{"s":"x\\"12345678901234567890","n":12345678901234567890,"f":1.5e300,"a":[-9007199254740993,9007199254740992,42,0.5],"k12345678901234567890":1}'))
      assert.equal('x"12345678901234567890', d.s)
      assert.equal("12345678901234567890", d.n)
      assert.equal(1.5e300, d.f)
      assert.equal("-9007199254740993", d.a[1])
      assert.equal(9007199254740992, d.a[2]) -- fits a double exactly: stays a number
      assert.equal(42, d.a[3])
      assert.equal(1, d.k12345678901234567890)
      local _, err = client_mod.json_decode("{nope")
      assert.equal("protocol", err.reason)
    end)

    it("encodes big integers exactly", function()
      local s = client_mod.json_encode{ a = client_mod.bigint("12345678901234567890"), t = 1700000000, n = { 123456789012345 } }
      assert.truthy(s:find('"a":12345678901234567890', 1, true), s)
      assert.truthy(s:find('"t":1700000000', 1, true), s)
      assert.truthy(s:find('[123456789012345]', 1, true), s)
      local back = client_mod.json_decode(s)
      assert.equal("12345678901234567890", back.a)
    end)

    it("sends the JSON body with a content type, and the query string", function()
      local c = new()
      local r = assert(c:call{ product = "mp", method = "POST", path = "/echo",
        query = { b = "x y", a = 1 }, json = { sn = "SN1", id = client_mod.bigint("12345678901234567890") } })
      assert.equal("POST", r.method)
      assert.equal("/echo?a=1&b=x%20y", r.uri)
      assert.equal("application/json", r.headers["content-type"])
      assert.truthy(r.body:find('"id":12345678901234567890', 1, true), r.body)
      assert.equal("SN1", client_mod.json_decode(r.body).sn)
    end)
  end)

  describe("tokens", function()
    it("injects the token and, on 40001, invalidates it and retries exactly once", function()
      local k = key()
      local tp = provider("stale", "good")
      local c = new{ token_provider = tp }
      local r = assert(c:call{ product = "mp", path = "/cgi-bin/need_token", query = { key = k }, token = true })
      assert.equal("good", r.seen)
      assert.same({ "stale" }, tp.invalidated)
      assert.equal(2, calls(k))
    end)

    for _, code in ipairs { 40014, 42001 } do
      it("treats " .. code .. " as an invalid token too, retrying once only", function()
        local k = key()
        local tp = provider("stale") -- never gets better
        local c = new{ token_provider = tp }
        local r, err = c:call{ product = "mp", path = "/cgi-bin/need_token", query = { key = k, code = code }, token = true }
        assert.is_nil(r)
        assert.equal(code, err.errcode)
        assert.equal("token_invalid", err.class)
        assert.equal("6571-abcd-01", err.request_id)
        assert.same({ "stale" }, tp.invalidated)
        assert.equal(2, calls(k))
      end)
    end

    it("does not touch the provider for a token the caller put in the query", function()
      local k = key()
      local tp = provider("good")
      local c = new{ token_provider = tp }
      local _, err = c:call{ product = "wecom", path = "/cgi-bin/need_token", query = { key = k, access_token = "mine" } }
      assert.equal(40001, err.errcode)
      assert.same({}, tp.invalidated)
      assert.equal(0, tp.calls)
      assert.equal(1, calls(k))
    end)

    it("fails clearly without a token provider", function()
      local _, err = new():call{ product = "mp", path = "/cgi-bin/need_token", token = true }
      assert.equal("token", err.kind)
    end)

    it("passes a provider's failure through", function()
      local c = new{ token_provider = { token = function() return nil, errors.new("token", "store down") end } }
      local _, err = c:call{ product = "mp", path = "/cgi-bin/need_token", token = true }
      assert.equal("store down", err.message)
    end)
  end)

  describe("errcodes", function()
    local cases = {
      { 45009, "daily_quota", false }, { 48001, "permission", false }, { 47001, "bad_request", false },
      { 40013, "permission", false }, { 123456, "other", false },
    }
    for _, case in ipairs(cases) do
      it(("maps %d to %s without retrying"):format(case[1], case[2]), function()
        local k = key()
        local _, err = new():call{ product = "mp", path = "/cgi-bin/errcode", query = { code = case[1], key = k },
          rate_limit = false }
        assert.equal("wx", err.kind)
        assert.equal(case[1], err.errcode)
        assert.equal(case[2], err.class)
        assert.equal(case[3], err.retryable)
        assert.equal("r-" .. case[1], err.request_id)
        assert.equal(1, calls(k))
      end)
    end

    it("retries -1 (busy) with backoff up to the attempt limit", function()
      local k = key()
      local retries = {}
      local c = new{ retry = { attempts = 4, base_delay = 0.01, max_delay = 0.02 },
        hooks = { on_retry = function(i) retries[#retries + 1] = i end } }
      local _, err = c:call{ product = "mp", method = "POST", path = "/cgi-bin/errcode", query = { code = -1, key = k } }
      assert.equal("busy", err.class)
      assert.equal(4, err.attempts)
      assert.equal(4, calls(k))
      assert.equal(3, #retries)
      assert.equal(-1, retries[1].errcode)
    end)

    it("after 45009 refuses further calls to that API locally", function()
      periods.clear_of_midnight(30)
      local k = key()
      local c = new()
      local _, err = c:call{ product = "mp", path = "/cgi-bin/errcode", query = { code = 45009, key = k } }
      assert.equal("daily_quota", err.class)
      local _, err2 = c:call{ product = "mp", path = "/cgi-bin/errcode", query = { code = 45009, key = k } }
      assert.equal("quota", err2.kind)
      assert.equal("daily", err2.reason)
      assert.equal(1, calls(k))
    end)

    it("WeCom's 45009 is a rate limit there: returned, not turned into a local daily block", function()
      local k = key()
      local c = new()
      for _ = 1, 2 do
        local _, err = c:call{ product = "wecom", path = "/cgi-bin/errcode", query = { code = 45009, key = k } }
        assert.equal("wx", err.kind)
        assert.equal("rate_limited", err.class)
      end
      assert.equal(2, calls(k))
    end)

    it("45011 waits for the next minute, or gives up when that is beyond the time budget", function()
      local k = key()
      local c = new{ retry = { attempts = 3, base_delay = 0.01, max_delay = 0.02, max_total = 0.5 } }
      local t0 = socket.gettime()
      local _, err = c:call{ product = "mp", path = "/cgi-bin/errcode", query = { code = 45011, key = k } }
      assert.equal("minute_quota", err.class)
      assert.is_true(err.retry_after > 0 and err.retry_after <= 60.1)
      if err.retry_after > 0.5 then
        assert.equal(1, calls(k))
        assert.is_true(socket.gettime() - t0 < 0.4)
      end
    end)
  end)

  describe("retries", function()
    it("retries HTTP 5xx on GET and succeeds", function()
      local k = key()
      local r = assert(new():call{ product = "mp", path = "/flaky", query = { key = k, fail = 2, code = 502 } })
      assert.is_true(r.ok)
      assert.equal(3, r.calls)
    end)

    it("does not repeat a POST that reached the server (5xx, reset)", function()
      local k = key()
      local _, err = new():call{ product = "mp", method = "POST", path = "/flaky", query = { key = k, fail = 1, code = 500, errcode = 0 }, json = {} }
      assert.equal(500, err.http_status)
      assert.equal(1, calls(k))
      local k2 = key()
      local _, err2 = new():call{ product = "mp", method = "POST", path = "/flaky", query = { key = k2, fail = 1, reset = 1 }, json = {} }
      assert.equal("reset", err2.reason)
      assert.is_true(err2.sent)
      assert.equal(1, calls(k2))
    end)

    it("repeats a POST marked idempotent", function()
      local k = key()
      local r = assert(new():call{ product = "mp", method = "POST", path = "/flaky", idempotent = true,
        query = { key = k, fail = 1, reset = 1 }, json = {} })
      assert.equal(2, r.calls)
    end)

    it("repeats a POST whose connection failed before sending", function()
      local dead = "http://127.0.0.1:" .. nginx.dead_port()
      local retries = 0
      local c = new{ base_urls = { mp = dead }, hooks = { on_retry = function() retries = retries + 1 end } }
      local _, err = c:call{ product = "mp", method = "POST", path = "/x", json = {} }
      assert.equal("connect", err.reason)
      assert.is_false(err.sent)
      assert.equal(2, retries)
      assert.equal(3, err.attempts)
    end)

    it("falls back to the backup host when the primary cannot be reached", function()
      local dead = "http://127.0.0.1:" .. nginx.dead_port()
      local c = new{ base_urls = { pay = dead }, backup_urls = { pay = base } }
      local r = assert(c:call{ product = "pay", method = "POST", path = "/v3/pay/thing", json = {} })
      assert.equal("12345678901234567890", r.total_count)
    end)

    it("honours Retry-After on 429", function()
      local k = key()
      local c = new()
      local t0 = socket.gettime()
      local r = assert(c:call{ product = "mp", method = "POST", path = "/flaky", json = {},
        query = { key = k, fail = 1, code = 429, retry_after = 1 } })
      local dt = socket.gettime() - t0
      assert.equal(2, r.calls)
      assert.is_true(dt >= 0.95, "waited " .. dt)
    end)

    it("honours Retry-After as an HTTP date", function()
      local k = key()
      local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 2)
      local t0 = socket.gettime()
      local r = assert(new():call{ product = "mp", path = "/flaky",
        query = { key = k, fail = 1, code = 503, errcode = 0, retry_after = when } })
      assert.equal(2, r.calls)
      assert.is_true(socket.gettime() - t0 >= 0.9)
    end)

    it("parses both Retry-After forms", function()
      assert.equal(120, client_mod.parse_retry_after("120", 0))
      assert.equal(1.5, client_mod.parse_retry_after(" 1.5 ", 0))
      -- 1445412480 = Wed, 21 Oct 2015 07:28:00 GMT
      assert.equal(30, client_mod.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412450))
      assert.equal(0, client_mod.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490))
      -- epoch values from Python's calendar.timegm: a leap day inside, and 2100 (not leap)
      assert.equal(31622400, client_mod.parse_retry_after("Fri, 01 Mar 2024 00:00:00 GMT", 1677628800))
      assert.equal(86400, client_mod.parse_retry_after("Mon, 01 Mar 2100 00:00:00 GMT", 4107456000))
      assert.is_nil(client_mod.parse_retry_after("soon", 0))
      assert.is_nil(client_mod.parse_retry_after("Wed, 21 Foo 2015 07:28:00 GMT", 0))
    end)

    it("does not wait beyond the total time budget", function()
      local k = key()
      local c = new{ retry = { max_total = 2, base_delay = 0.01, max_delay = 0.02 } }
      local t0 = socket.gettime()
      local _, err = c:call{ product = "mp", path = "/flaky", query = { key = k, fail = 1, code = 503, errcode = 0, retry_after = 30 } }
      assert.equal(503, err.http_status)
      assert.equal(30, err.retry_after)
      assert.is_true(socket.gettime() - t0 < 1)
      assert.equal(1, calls(k))
    end)

    it("backs off exponentially with full jitter", function()
      local k = key()
      local delays = {}
      local c = new{ retry = { attempts = 4, base_delay = 0.02, max_delay = 0.05 }, random = function() return 0.5 end,
        hooks = { on_retry = function(i) delays[#delays + 1] = i.delay end } }
      c:call{ product = "mp", path = "/flaky", query = { key = k, fail = 9, code = 500 } }
      assert.equal(3, #delays)
      assert.near(0.01, delays[1], 1e-9)
      assert.near(0.02, delays[2], 1e-9)
      assert.near(0.025, delays[3], 1e-9) -- capped by max_delay
    end)
  end)

  describe("Pay responses", function()
    it("decode on success and map errors to kind pay", function()
      local c = new()
      local r = assert(c:call{ product = "pay", path = "/v3/pay/thing" })
      assert.equal("12345678901234567890", r.total_count)
      local _, err = c:call{ product = "pay", path = "/v3/pay/thing", query = { status = 400 } }
      assert.equal("pay", err.kind)
      assert.equal("PARAM_ERROR", err.errcode)
      assert.equal(400, err.http_status)
      assert.equal("pay-req-1", err.request_id)
    end)

    it("calls sign per attempt with the exact path and body, and raw returns the response", function()
      local seen = {}
      local c = new()
      local res = assert(c:call{ product = "pay", method = "POST", path = "/echo", query = { z = 1, a = "b" },
        json = { x = 1 }, raw = true,
        sign = function(m, target, body) seen[#seen + 1] = { m, target, body }; return { Authorization = "SIG " .. #body } end })
      assert.same({ { "POST", "/echo?a=b&z=1", '{"x":1}' } }, seen)
      assert.equal(200, res.status)
      assert.equal("SIG 7", cjson.decode(res.body).headers.authorization)
    end)
  end)

  describe("rate limits", function()
    it("enforces a daily quota locally before sending", function()
      periods.clear_of_midnight(30)
      local k = key()
      local c = new{ rate_limits = { ["mp /flaky"] = { daily = 2 } } }
      assert(c:call{ product = "mp", path = "/flaky", query = { key = k } })
      assert(c:call{ product = "mp", path = "/flaky", query = { key = k } })
      local _, err = c:call{ product = "mp", path = "/flaky", query = { key = k } }
      assert.equal("quota", err.kind)
      assert.equal("daily", err.reason)
      assert.equal(2, calls(k))
      assert.truthy(tostring(err):find("daily quota", 1, true))
    end)

    it("spaces calls by the token bucket", function()
      local k = key()
      local c = new{ rate_limits = { ["mp /flaky"] = { rate = 10, burst = 1 } }, rate_wait = 5 }
      local t0 = socket.gettime()
      for _ = 1, 4 do assert(c:call{ product = "mp", path = "/flaky", query = { key = k } }) end
      local dt = socket.gettime() - t0
      assert.is_true(dt >= 0.28, "4 calls at 10/s burst 1 took " .. dt)
      local c2 = new{ rate_limits = { ["mp /flaky"] = { rate = 1, burst = 1 } }, rate_wait = 0 }
      assert(c2:call{ product = "mp", path = "/flaky", query = { key = k } })
      local _, err = c2:call{ product = "mp", path = "/flaky", query = { key = k } }
      assert.equal("rate", err.reason)
    end)
  end)

  describe("hooks", function()
    it("carry method, path, status, errcode, latency, request id, with secrets redacted", function()
      local events = {}
      local function rec(name) return function(i) events[#events + 1] = { name, i } end end
      local tp = provider("stale", "good")
      local c = new{ token_provider = tp,
        hooks = { on_request = rec("req"), on_response = rec("res"), on_retry = rec("retry") } }
      assert(c:call{ product = "mp", path = "/cgi-bin/need_token", token = true,
        query = { secret = "s3cret", key = "x" }, headers = { Authorization = "WECHATPAY2 sig" } })
      local names = {}
      for i, e in ipairs(events) do names[i] = e[1] end
      assert.same({ "req", "res", "retry", "req", "res" }, names)
      local req, res = events[1][2], events[2][2]
      assert.equal("GET", req.method)
      assert.equal("/cgi-bin/need_token", req.path)
      assert.equal("***", req.query.access_token)
      assert.equal("***", req.query.secret)
      assert.equal("x", req.query.key)
      assert.equal("***", req.headers.Authorization)
      assert.equal(200, res.status)
      assert.equal(40001, res.errcode)
      assert.equal("6571-abcd-01", res.request_id)
      assert.is_number(res.latency)
      assert.equal(0, events[5][2].errcode)
      for _, e in ipairs(events) do
        local s = cjson.encode((function() local t = {} for k2, v in pairs(e[2]) do if k2 ~= "error" then t[k2] = v end end return t end)())
        assert.is_nil(s:find("stale", 1, true), s)
        assert.is_nil(s:find("good", 1, true), s)
        assert.is_nil(s:find("s3cret", 1, true), s)
        assert.is_nil(s:find("WECHATPAY2", 1, true), s)
        if e[2].error then assert.is_nil(tostring(e[2].error):find("stale", 1, true)) end
      end
    end)

    it("redact_url hides token and secret parameters", function()
      assert.equal("/p?access_token=***&a=1&secret=***",
        client_mod.redact_url("/p?access_token=abc&a=1&secret=xyz"))
    end)

    local function run_script(src)
      local f = os.tmpname()
      local h = io.open(f, "w")
      h:write(src)
      h:close()
      local lua = os.getenv("WXHW_RUNTIME") == "luajit" and "luajit" or "lua5.4"
      local p = io.popen(("WXHW_LOG= %s %s 2>&1"):format(lua, f))
      local out = p:read("*a")
      p:close()
      os.remove(f)
      return out
    end

    it("the default logger writes nothing unless enabled", function()
      local src = ([[
        local c = require("wxhw.client").new{ base_urls = { mp = %q }, log = %s }
        assert(c:call{ product = "mp", path = "/ok", raw = true, query = { access_token = "TOPSECRET" } })
      ]])
      local quiet = run_script(src:format(base, "nil"))
      assert.equal("", quiet)
      local loud = run_script(src:format(base, "true"))
      assert.truthy(loud:find("wxhw response GET /ok status=200", 1, true), loud)
      assert.is_nil(loud:find("TOPSECRET", 1, true))
    end)
  end)

  it("rejects misuse", function()
    local c = new()
    assert.has_error(function() c:call{ product = "mp", path = "no-slash" } end)
    assert.has_error(function() c:call{ product = "nope", path = "/x" } end)
    assert.has_error(function() c:hook("on_whatever", print) end)
  end)
end)

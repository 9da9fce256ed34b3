-- One refresh-once rule (issue 16): a call names its own token provider and
-- query parameter (`token = { provider =, param = }`, how WeCom openhw sends
-- model_access_token / device_access_token), and the client alone refreshes
-- it once on a token errcode, 40082/40083 included for wecom. And Pay's
-- concurrent device listing runs its pages through the mux transport.
local client_mod = require "wxhw.client"
local pay_mod = require "wxhw.pay"
local http_server = require "support.http_server"
local emulator = require "support.emulator"

local OPENHW = [=[
    location = /cgi-bin/openhw/thing {
      content_by_lua_block {
        ngx.shared.wxhw_test:incr("calls:thing", 1, 0)
        ngx.header["Content-Type"] = "application/json"
        if ngx.var.arg_model_access_token == "good" and ngx.var.arg_access_token == nil then
          ngx.print('{"errcode":0,"errmsg":"ok"}')
        else
          ngx.print('{"errcode":' .. (ngx.var.arg_code or "40082") .. ',"errmsg":"invalid token"}')
        end
      }
    }
]=]

local function provider(first, second)
  return {
    current = first, invalidated = {},
    token = function(self) return self.current end,
    invalidate = function(self, failed)
      self.invalidated[#self.invalidated + 1] = failed
      self.current = second
    end,
  }
end

describe("a call's own token provider and parameter", function()
  local srv
  setup(function() srv = assert(http_server.start{ tls = false, server_block = OPENHW }) end)
  teardown(function() if srv then srv:stop() end end)

  local function calls()
    local h = require("wxhw.http").new{}
    local n = tonumber(assert(h:request{ url = srv.base_url .. "/calls?key=thing" }).body) or 0
    h:close()
    return n
  end

  for _, code in ipairs{ "40082", "40083", "40001" } do
    it("is injected under its name, hidden in hooks, and refreshed once on " .. code, function()
      local before = calls()
      local seen = {}
      local c = assert(client_mod.new{ base_urls = { wecom = srv.base_url },
        hooks = { on_request = function(i) seen[#seen + 1] = i.query.model_access_token end } })
      local p = provider("stale", "good")
      local res = assert(c:call{ product = "wecom", method = "POST", path = "/cgi-bin/openhw/thing",
        query = { code = code }, json = {}, token = { provider = p, param = "model_access_token" } })
      assert.equal(0, res.errcode)
      assert.same({ "stale" }, p.invalidated)
      assert.same({ "***", "***" }, seen)
      assert.equal(before + 2, calls())
    end)
  end

  it("refreshes only once: a second rejection is returned", function()
    local before = calls()
    local c = assert(client_mod.new{ base_urls = { wecom = srv.base_url } })
    local p = provider("stale", "still-stale")
    local _, err = c:call{ product = "wecom", method = "POST", path = "/cgi-bin/openhw/thing", json = {},
      token = { provider = p, param = "model_access_token" } }
    assert.equal(40082, err.errcode)
    assert.equal("token_invalid", err.class)
    assert.same({ "stale" }, p.invalidated)
    assert.equal(before + 2, calls())
  end)

  it("raises on a token option without a provider", function()
    local c = assert(client_mod.new{ base_urls = { wecom = srv.base_url } })
    assert.has_error(function()
      c:call{ product = "wecom", path = "/cgi-bin/openhw/thing", token = { param = "model_access_token" } }
    end)
  end)
end)

describe("Pay's concurrent device listing", function()
  local e
  setup(function() e = emulator.start{ seed = 5, iot_devices = 1000 } end)
  teardown(function() if e then e.stop() end end)

  it("runs its pages side by side through the mux transport", function()
    local c = e.credentials.pay
    local p = assert(pay_mod.new{ mchid = c.mchid, serial_no = c.merchant_serial_no,
      private_key = c.merchant_private_key, apiv3_key = c.apiv3_key, base_url = e.base_url })
    local _, pager = p:iot_devices{ limit = 100, concurrency = 4 }
    local all = assert(pager:collect())
    assert.equal(1000, #all)
    assert.equal(4, p.mux.max_in_flight)
    assert.is_true(p.mux.batches >= 2)
    p:close()
  end)
end)

-- wxhw.pay inside OpenResty (nginx-lua, LuaJIT, cosocket transport): the same
-- merchant code lists devices and checks notifications without blocking.
-- #lua54: nginx runs its own LuaJIT; once per spec run is enough.
local nginx = require "support.nginx"
local emulator = require "support.emulator"
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"

describe("wxhw.pay in OpenResty #lua54", function()
  local e, srv, dir
  setup(function()
    e = emulator.start{ seed = 21, iot_devices = 1200 }
    local c = e.credentials.pay
    local p = io.popen("mktemp -d /tmp/wxhw-spec.XXXXXX")
    dir = p:read("*l")
    p:close()
    -- the merchant's configuration as a module the workers load
    local f = assert(io.open(dir .. "/pay_conf.lua", "w"))
    f:write("return ", string.format("{ mchid = %q, serial_no = %q, key_path = %q, apiv3_key = %q, base_url = %q, " ..
      "cert_path = %q }", c.mchid, c.merchant_serial_no, c.merchant_private_key_path, c.apiv3_key, e.base_url,
      c.platform_certificate_path))
    f:close()
    srv = assert(nginx.start{
      lua_package_path = dir .. "/?.lua",
      server_block = [[
        location = /devices {
          content_by_lua_block {
            local w = package.loaded["spec.pay_worker"]
            if not w then
              local conf = require "pay_conf"
              local f = io.open(conf.key_path); local key = f:read("*a"); f:close()
              local pay = assert(require("wxhw.pay").new{ mchid = conf.mchid, serial_no = conf.serial_no,
                private_key = key, apiv3_key = conf.apiv3_key, base_url = conf.base_url })
              w = { pay = pay }
              package.loaded["spec.pay_worker"] = w
            end
            local n, first, last = 0
            local it = w.pay:iot_devices{ limit = 100, offset = tonumber(ngx.var.arg_offset) or 0, concurrency = 2 }
            for d, err in it do
              if d == false then ngx.status = 500; ngx.say(tostring(err)); return end
              n = n + 1
              first = first or d.device_sn
              last = d.device_sn
            end
            ngx.say(require("cjson").encode({ n = n, first = first, last = last,
              transport = w.pay.client.transport.kind }))
          }
        }
        location = /notify {
          content_by_lua_block {
            local w = package.loaded["spec.pay_worker"]
            ngx.req.read_body()
            local ev, err = w.pay:notification(ngx.req.get_headers(), ngx.req.get_body_data() or "")
            if not ev then ngx.status = 401; ngx.say(err.reason); return end
            ngx.log(ngx.WARN, "pay notification ", ev.data.out_trade_no)
            ngx.status = 204
          }
        }]],
    })
  end)
  teardown(function()
    if srv then srv:stop() end
    if e then e.stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  local function get(path)
    local out = {}
    local _, status = http.request{ url = srv.base_url .. path, sink = ltn12.sink.table(out) }
    return status, table.concat(out)
  end

  it("lists devices over cosockets within the rate limit", function()
    local status, body = get("/devices?offset=0")
    assert.equal(200, status, body .. srv:error_log())
    local r = cjson.decode(body)
    assert.equal("ngx", r.transport)
    assert.equal(1200, r.n)
    assert.equal("EMU00000001", r.first:sub(1, 11))
    assert.equal("EMU00001200", r.last:sub(1, 11))
  end)

  it("verifies notifications delivered to the gateway", function()
    e.control("/__emulator/callbacks", { pay_url = srv.base_url .. "/notify" })
    local ok = e.control("/__emulator/callbacks/pay/notify", { resource = { out_trade_no = "NGX-1" } })
    assert.equal("delivered", ok.outcome)
    assert.matches("pay notification NGX%-1", srv:error_log())
    local bad = e.control("/__emulator/callbacks/pay/notify", { signtest = true })
    assert.equal("retry", bad.outcome)
  end)
end)

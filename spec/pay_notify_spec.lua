-- Pay notifications end to end: the emulator posts signed, encrypted
-- notifications to a merchant endpoint (a child process using
-- pay:notification); failures are answered 401 and WeChat retries.
local emulator = require "support.emulator"
local cjson = require "cjson"
local socket = require "socket"

describe("wxhw.pay notifications from the emulator", function()
  local e, rpid, out
  setup(function()
    e = emulator.start{ seed = 5, iot_devices = 10 }
    out = os.tmpname()
    local rt = os.getenv("WXHW_RUNTIME") == "luajit" and "luajit" or "lua5.4"
    local ready = os.tmpname()
    local p = io.popen(string.format("(%s spec/support/pay_receiver.lua %s %s > %s 2>&1 & echo $!)", rt, e.base_url,
      out, ready))
    rpid = tonumber(p:read("*l"))
    p:close()
    local port
    for _ = 1, 500 do
      local f = io.open(ready)
      local s = f and f:read("*a") or ""
      if f then f:close() end
      port = s:match("READY (%d+)")
      if port then break end
      socket.sleep(0.02)
    end
    os.remove(ready)
    assert(port, "receiver did not start")
    e.control("/__emulator/callbacks", { pay_url = "http://127.0.0.1:" .. port .. "/pay/notify" })
  end)
  teardown(function()
    if rpid then os.execute("kill " .. rpid .. " 2>/dev/null") end
    if out then os.remove(out) end
    if e then e.stop() end
  end)

  local function last()
    local f = assert(io.open(out))
    local l
    for line in f:lines() do l = line end
    f:close()
    return cjson.decode(l)
  end

  it("delivers, verifies and decrypts a transaction notification", function()
    local r = e.control("/__emulator/callbacks/pay/notify", { resource = { out_trade_no = "T-1001", mchid = "1900000001" } })
    assert.equal("delivered", r.outcome)
    local got = last()
    assert.is_true(got.ok)
    assert.equal("TRANSACTION.SUCCESS", got.event_type)
    assert.equal("T-1001", got.out_trade_no)
  end)

  it("answers 401 with the reason to a bad signature and a probe, and WeChat retries", function()
    for flag, reason in pairs({ bad_signature = "bad_signature", signtest = "probe" }) do
      local r = e.control("/__emulator/callbacks/pay/notify", { [flag] = true })
      assert.equal("retry", r.outcome)
      local got = last()
      assert.is_false(got.ok)
      assert.equal(reason, got.reason)
    end
  end)

  it("accepts WeChat's retry of an undelivered notification (signed afresh, so not a replay)", function()
    local url = e.control("/__emulator/callbacks").pay_url
    e.control("/__emulator/callbacks", { pay_url = "http://127.0.0.1:9/down" })
    local r = e.control("/__emulator/callbacks/pay/notify", { resource = { out_trade_no = "T-RETRY" } })
    assert.equal("retry", r.outcome)
    e.control("/__emulator/callbacks", { pay_url = url })
    e.control("/__emulator/clock", { advance = 16 }) -- the first retry is due after 15 s
    -- other notifications' retries fall due too: look for this one among all outcomes
    local got
    for _ = 1, 100 do
      for line in io.lines(out) do
        local t = cjson.decode(line)
        if t.out_trade_no == "T-RETRY" then got = t end
      end
      if got then break end
      socket.sleep(0.05)
    end
    assert.truthy(got, "the retried notification never arrived")
    assert.is_true(got.ok)
  end)

  it("refuses a notification signed 400 s off", function()
    e.control("/__emulator/pay/config", { skew = 400 })
    local r = e.control("/__emulator/callbacks/pay/notify", {})
    e.control("/__emulator/pay/config", { skew = 0 })
    assert.equal("retry", r.outcome)
    assert.equal("skew", last().reason)
  end)

  it("verifies notifications signed with the WeChat Pay public key", function()
    local c = e.credentials.pay
    local r = e.control("/__emulator/callbacks/pay/notify", { wechatpay_serial = c.public_key_id,
      resource = { out_trade_no = "T-PUBKEY" } })
    assert.equal("delivered", r.outcome)
    assert.equal("T-PUBKEY", last().out_trade_no)
  end)
end)

-- wxhw.pay: configuration checks and the Authorization header, cross-checked
-- with the OpenSSL command line.
local pay_mod = require "wxhw.pay"
local crypto = require "wxhw.crypto"
local ossl = require "support.openssl"
local keys = require "support.pay_keys"

describe("wxhw.pay signing", function()
  local k, pay
  setup(function()
    k = keys.make()
    pay = assert(pay_mod.new{ mchid = keys.MCHID, serial_no = keys.SERIAL, private_key = k.merchant_pem,
      apiv3_key = keys.APIV3, platform_public_key = k.pubkey_pem, platform_public_key_id = keys.PUB_KEY_ID })
  end)
  teardown(function() k.cleanup() end)

  local function parse(auth)
    local typ, rest = auth:match("^(%S+) (.*)$")
    local f = {}
    for name, val in rest:gmatch('([%w_]+)="([^"]*)"') do f[name] = val end
    return typ, f, rest
  end

  it("builds the header in the documented form, verified by openssl dgst", function()
    local url = "/v3/iotmanage/devices?limit=100&offset=0"
    local auth = pay:authorization("GET", url, "", 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242")
    local typ, f, rest = parse(auth)
    assert.equal("WECHATPAY2-SHA256-RSA2048", typ)
    assert.equal('mchid="1900000001",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",timestamp="1554208460",' ..
      'serial_no="' .. keys.SERIAL .. '",signature="' .. f.signature .. '"', rest)
    local msg = "GET\n" .. url .. "\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
    ossl.write(k.dir .. "/msg", msg)
    ossl.write(k.dir .. "/sig", crypto.base64_decode(f.signature))
    local ok, out = ossl.run("openssl dgst -sha256 -verify " .. k.merchant_pub_path .. " -signature " ..
      k.dir .. "/sig " .. k.dir .. "/msg")
    assert.is_true(ok, out)
    assert.matches("Verified OK", out)
    -- and byte-identical to the CLI's own signature (PKCS#1 v1.5 is deterministic)
    local _, want = ossl.run("openssl dgst -sha256 -sign " .. k.merchant_path .. " " .. k.dir .. "/msg")
    assert.equal(crypto.base64_encode(want), f.signature)
  end)

  it("signs the exact body of a POST and the query as sent", function()
    local body = '{"sub_mchid":"1900000109","device_sn":"HSA1RF5A0700165YuJCL8n7"}'
    local auth = pay:authorization("POST", "/v3/x?b=2&a=1", body, 1700000000, "abc")
    local _, f = parse(auth)
    ossl.write(k.dir .. "/msg2", "POST\n/v3/x?b=2&a=1\n1700000000\nabc\n" .. body .. "\n")
    ossl.write(k.dir .. "/sig2", crypto.base64_decode(f.signature))
    assert.is_true((ossl.run("openssl dgst -sha256 -verify " .. k.merchant_pub_path .. " -signature " ..
      k.dir .. "/sig2 " .. k.dir .. "/msg2")))
    -- a different query order is a different signature
    local _, g = parse(pay:authorization("POST", "/v3/x?a=1&b=2", body, 1700000000, "abc"))
    assert.not_equal(f.signature, g.signature)
  end)

  it("defaults to the current time and a 32-character nonce", function()
    local _, f = parse(pay:authorization("GET", "/v3/certificates"))
    assert.equal(32, #f.nonce_str)
    assert.is_nil(f.nonce_str:find("[^%w]"))
    assert.is_true(math.abs(tonumber(f.timestamp) - os.time()) <= 2)
  end)

  it("raises on misuse", function()
    assert.has_error(function() pay:authorization("get", "/v3/x", "") end)
    assert.has_error(function() pay:authorization("GET", "v3/x", "") end)
    assert.has_error(function() pay:authorization("GET", "/v3/x\n", "") end)
    assert.has_error(function() pay:authorization("GET", "/v3/x", {}) end)
    assert.has_error(function() pay:authorization("GET", "/v3/x", "", 1, "a b") end)
  end)

  it("never shows the key in tostring", function()
    local s = tostring(pay)
    assert.matches("mchid=1900000001", s)
    assert.matches(keys.PUB_KEY_ID, s, 1, true)
    assert.is_nil(s:find("PRIVATE", 1, true))
    assert.is_nil(s:find(keys.APIV3, 1, true))
  end)

  describe("configuration", function()
    local function cfg(over)
      local o = { mchid = keys.MCHID, serial_no = keys.SERIAL, private_key = k.merchant_pem, apiv3_key = keys.APIV3,
        platform_public_key = k.pubkey_pem, platform_public_key_id = keys.PUB_KEY_ID }
      for key, v in pairs(over) do o[key] = v end
      return pay_mod.new(o)
    end

    it("refuses a wrong key type with a clear error", function()
      local p, err = cfg{ private_key = k.ec_pem }
      assert.is_nil(p)
      assert.equal("input", err.kind)
      assert.matches("ec key", err.message)
      p, err = cfg{ private_key = "not a key" }
      assert.is_nil(p)
      assert.matches("private_key", err.message)
      -- a public key where the private one belongs
      p, err = cfg{ private_key = k.pubkey_pem }
      assert.is_nil(p)
      assert.equal("input", err.kind)
    end)

    it("checks mchid, serial, APIv3 key and public-key pairing", function()
      assert.matches("mchid", select(2, cfg{ mchid = 1900000001 }).message)
      assert.matches("serial_no", select(2, cfg{ serial_no = "xyz" }).message)
      assert.matches("apiv3_key", select(2, cfg{ apiv3_key = "short" }).message)
      assert.matches("go together", select(2, cfg{ platform_public_key_id = 5 }).message)
      assert.matches("PUB_KEY_ID_", select(2, cfg{ platform_public_key_id = "KEY_1" }).message)
      assert.matches("platform_certificates%[1%]", select(2, cfg{ platform_certificates = { "junk" } }).message)
      assert.matches("user_agent", select(2, cfg{ user_agent = "a\r\nb" }).message)
    end)

    it("keeps merchants apart", function()
      local other = assert(pay_mod.new{ mchid = "1900000002", serial_no = keys.SERIAL, private_key = k.merchant_pem,
        apiv3_key = keys.APIV3, platform_certificates = { k.cert1_pem } })
      assert.is_nil(other.keyring.public_key)
      assert.is_truthy(pay.keyring.public_key)
      assert.not_equal(pay.client.namespace, other.client.namespace)
      assert.not_equal(pay.replay, other.replay)
      local _, f1 = parse(pay:authorization("GET", "/v3/x", "", 1, "n"))
      local _, f2 = parse(other:authorization("GET", "/v3/x", "", 1, "n"))
      assert.equal("1900000002", f2.mchid)
      assert.equal(f1.signature, f2.signature) -- same key configured: same bytes; state stays separate
    end)
  end)
end)

-- WMPF device signatures, verified by the OpenSSL CLI exactly as the official
-- mmiot_ecdsa_sign.sh does (digest, then pkeyutl -verify on the DER signature).
local wmpf = require "wxhw.wmpf"
local crypto = require "wxhw.crypto"
local ossl = require "support.openssl"

describe("wmpf.device_signature #c", function()
  local dir, keypath, pubpath
  setup(function()
    dir = ossl.tmpdir()
    keypath, pubpath = ossl.genkey(dir, "ec-sec1", "device")
  end)
  teardown(function() ossl.rmtree(dir) end)

  local function cli_verify(message, sig_b64)
    ossl.write(dir .. "/msg", message)
    ossl.write(dir .. "/sig.b64", sig_b64 .. "\n")
    assert(ossl.run("openssl dgst -sha256 -binary " .. dir .. "/msg > " .. dir .. "/digest"))
    assert(ossl.run("openssl base64 -d -A -in " .. dir .. "/sig.b64 -out " .. dir .. "/sig.der"))
    local ok, out = ossl.run("openssl pkeyutl -verify -pubin -inkey " .. pubpath .. " -sigfile " .. dir ..
      "/sig.der -in " .. dir .. "/digest")
    return ok and out:find("Signature Verified Successfully", 1, true) ~= nil
  end

  it("signs <productId>_<deviceId>, verified by openssl pkeyutl", function()
    local sig = wmpf.device_signature(ossl.read(keypath), 6365, "640122050524")
    assert.is_nil(sig:find("[\r\n\t ]"))
    assert.is_true(cli_verify("6365_640122050524", sig))
    assert.is_false(cli_verify("6365_640122050525", sig))
  end)

  it("accepts a parsed key and large product ids exactly", function()
    local key = crypto.private_key(ossl.read(keypath))
    local sig = wmpf.device_signature(key, "2000000001234", "SN-001")
    assert.is_true(cli_verify("2000000001234_SN-001", sig))
  end)

  it("rejects RSA keys and bad PEM", function()
    local rsa = ossl.genkey(dir, "rsa2048")
    assert.has_error(function() wmpf.device_signature(ossl.read(rsa), 1, "d") end)
    local v, err = wmpf.device_signature("garbage", 1, "d")
    assert.is_nil(v)
    assert.matches("not a PEM private key", err.message)
  end)
end)

-- wxhw.pay: response verification (every named reason), key selection by
-- serial, certificate downloads, sensitive fields and notifications. The
-- WeChat side is played with the OpenSSL CLI and Python `cryptography`.
local pay_mod = require "wxhw.pay"
local crypto = require "wxhw.crypto"
local certificates = require "wxhw.pay.certificates"
local replay = require "wxhw.replay"
local ossl = require "support.openssl"
local keys = require "support.pay_keys"
local cjson = require "cjson"

local function py_gcm(key, nonce, aad, plain, dir)
  -- Python `cryptography` as the independent AES-256-GCM peer
  ossl.write(dir .. "/gcm_in", plain)
  local ok, out = ossl.run("python3 -c " .. ossl.quote(
    "import sys,base64\nfrom cryptography.hazmat.primitives.ciphers.aead import AESGCM\n" ..
    "k,n,a,f=sys.argv[1:5]\nsys.stdout.write(base64.b64encode(AESGCM(k.encode()).encrypt(n.encode(), " ..
    "open(f,'rb').read(), a.encode() if a else None)).decode())") .. " " .. ossl.quote(key) .. " " ..
    ossl.quote(nonce) .. " " .. ossl.quote(aad) .. " " .. dir .. "/gcm_in")
  assert(ok, "python3 cryptography failed")
  return out
end

describe("wxhw.pay verification", function()
  local k, pay, certpay, now
  setup(function()
    k = keys.make()
    pay = assert(pay_mod.new{ mchid = keys.MCHID, serial_no = keys.SERIAL, private_key = k.merchant_pem,
      apiv3_key = keys.APIV3, platform_public_key = k.pubkey_pem, platform_public_key_id = keys.PUB_KEY_ID })
    certpay = assert(pay_mod.new{ mchid = keys.MCHID, serial_no = keys.SERIAL, private_key = k.merchant_pem,
      apiv3_key = keys.APIV3, platform_certificates = { k.cert1_pem } })
    now = os.time()
  end)
  teardown(function() k.cleanup() end)

  local body = '{"data":[],"offset":0,"limit":100,"total_count":0}'

  local function reason(p, h, b, t)
    local ok, err = p:verify(h, b or body, t or now)
    assert.is_nil(ok)
    assert.equal("signature", err.kind)
    return err.reason, err
  end

  it("accepts an answer signed by openssl with the WeChat Pay public key", function()
    local nonce = "fdasflkja484w"
    ossl.write(k.dir .. "/resp", now .. "\n" .. nonce .. "\n" .. body .. "\n")
    local _, sig = ossl.run("openssl dgst -sha256 -sign " .. k.pubkey_path .. " " .. k.dir .. "/resp")
    local h = { ["Wechatpay-Timestamp"] = tostring(now), ["Wechatpay-Nonce"] = nonce,
      ["Wechatpay-Signature"] = crypto.base64_encode(sig), ["Wechatpay-Serial"] = keys.PUB_KEY_ID }
    local ok, info = pay:verify(h, body, now)
    assert.is_true(ok)
    assert.equal(nonce, info.nonce)
  end)

  it("takes headers in any case, or from a getter", function()
    local h = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now)
    local lower = {}
    for name, v in pairs(h) do lower[name:lower()] = v end
    assert.is_true(pay:verify(lower, body, now))
    assert.is_true(pay:verify(function(name) return h[name] end, body, now))
    -- wxhw.http gives repeated headers as a list: one value is fine
    lower["wechatpay-nonce"] = { lower["wechatpay-nonce"] }
    assert.is_true(pay:verify(lower, body, now))
  end)

  it("names a missing header, and an empty one", function()
    for _, name in ipairs({ "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial" }) do
      local h = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now)
      h[name] = nil
      local r, err = reason(pay, h)
      assert.equal("missing_header", r)
      assert.equal(name:lower(), err.header)
      assert.equal("08F78BB5AF0610D302", err.request_id)
      h[name] = ""
      assert.equal("missing_header", (reason(pay, h)))
    end
  end)

  it("refuses repeated and malformed headers and a foreign signature type", function()
    local h = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now)
    local lower = {}
    for name, v in pairs(h) do lower[name:lower()] = v end
    lower["wechatpay-signature"] = { h["Wechatpay-Signature"], "AAAA" }
    assert.equal("bad_header", (reason(pay, lower)))
    h["Wechatpay-Timestamp"] = "17e8"
    assert.equal("bad_header", (reason(pay, h)))
    h = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now)
    h["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    assert.equal("signature_type", (reason(pay, h)))
  end)

  it("enforces the 300 s window in both directions", function()
    for _, off in ipairs({ 299, -299 }) do
      assert.is_true(pay:verify(keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now + off), body, now))
    end
    for _, off in ipairs({ 300, -300, 3600, -86400 }) do
      local r, err = reason(pay, keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now + off))
      assert.equal("skew", r)
      assert.equal(-off, err.skew)
    end
  end)

  it("rejects WECHATPAY/SIGNTEST/ probes", function()
    local h = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now)
    h["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" .. h["Wechatpay-Signature"]:sub(20)
    local r, err = reason(pay, h)
    assert.equal("probe", r)
    assert.matches("SIGNTEST", err.message)
  end)

  it("catches tampered bodies, headers and signatures", function()
    local h = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now)
    assert.equal("bad_signature", (reason(pay, h, (body:gsub("0", "1", 1)))))
    assert.equal("bad_signature", (reason(pay, h, body .. " ")))
    -- re-serialised JSON does not verify: the body must be the raw bytes
    assert.equal("bad_signature", (reason(pay, h, cjson.encode(cjson.decode(body)))))
    local h2 = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now)
    h2["Wechatpay-Nonce"] = h2["Wechatpay-Nonce"] .. "x"
    assert.equal("bad_signature", (reason(pay, h2)))
    local h3 = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now)
    h3["Wechatpay-Timestamp"] = tostring(now - 1)
    assert.equal("bad_signature", (reason(pay, h3)))
    local h4 = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now)
    h4["Wechatpay-Signature"] = "not*base64"
    assert.equal("bad_signature", (reason(pay, h4)))
    -- signed by another key under the right serial
    assert.equal("bad_signature", (reason(pay, keys.signed_headers(k.platform, keys.PUB_KEY_ID, body, now))))
    assert.is_false(crypto._openssl_error_pending())
  end)

  it("chooses the key by Wechatpay-Serial: certificate mode, public-key mode, migration", function()
    -- certificate mode (serial case does not matter)
    assert.is_true(certpay:verify(keys.signed_headers(k.platform, keys.CERT1, body, now), body, now))
    assert.is_true(certpay:verify(keys.signed_headers(k.platform, keys.CERT1:lower(), body, now), body, now))
    local r, err = reason(certpay, keys.signed_headers(k.platform2, keys.CERT2, body, now))
    assert.equal("unknown_serial", r)
    assert.matches(keys.CERT2, err.message)
    -- public-key mode knows no certificate serial, and a mismatched serial is refused
    assert.equal("unknown_serial", (reason(pay, keys.signed_headers(k.platform, keys.CERT1, body, now))))
    assert.equal("unknown_serial", (reason(pay, keys.signed_headers(k.wxpub, "PUB_KEY_ID_0000000000000000000000000001",
      body, now))))
    -- both during a migration
    local both = assert(pay_mod.new{ mchid = keys.MCHID, serial_no = keys.SERIAL, private_key = k.merchant_pem,
      platform_public_key = k.pubkey_pem, platform_public_key_id = keys.PUB_KEY_ID,
      platform_certificates = { k.cert1_pem, k.cert2_pem } })
    assert.is_true(both:verify(keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, body, now), body, now))
    assert.is_true(both:verify(keys.signed_headers(k.platform, keys.CERT1, body, now), body, now))
    assert.is_true(both:verify(keys.signed_headers(k.platform2, keys.CERT2, body, now), body, now))
    -- a certificate's key never stands in for another serial
    assert.equal("bad_signature", (reason(both, keys.signed_headers(k.platform, keys.CERT2, body, now))))
    assert.equal(keys.PUB_KEY_ID, both.keyring:request_serial(now)) -- requests name the key we verify with
  end)

  it("refuses an expired platform certificate", function()
    local c = assert(certpay.keyring.certs[keys.CERT1])
    local r = reason(certpay, keys.signed_headers(k.platform, keys.CERT1, body, c.not_after + 10), body,
      c.not_after + 10)
    assert.equal("expired_certificate", r)
  end)

  describe("certificate downloads", function()
    local function entry(serial, pem, key)
      local nonce = crypto.nonce(12)
      return { serial_no = serial, effective_time = "2026-01-01T00:00:00+08:00",
        expire_time = "2031-01-01T00:00:00+08:00", encrypt_certificate = { algorithm = "AEAD_AES_256_GCM",
          nonce = nonce, associated_data = "certificate", ciphertext = py_gcm(key or keys.APIV3, nonce, "certificate",
            pem, k.dir) } }
    end

    it("decrypts entries encrypted by Python cryptography and checks serials", function()
      local doc = cjson.encode({ data = { entry(keys.CERT1, k.cert1_pem), entry(keys.CERT2, k.cert2_pem) } })
      local list = assert(certificates.decode_download(keys.APIV3, doc))
      assert.equal(2, #list)
      assert.equal(keys.CERT1, list[1].serial)
      assert.equal(k.cert2_pem, list[2].pem)
      -- wrong APIv3 key: GCM tag
      local _, err = certificates.decode_download("x" .. keys.APIV3:sub(2), doc)
      assert.equal("gcm_tag", err.reason)
      -- serial_no that does not match the certificate inside
      local _, err2 = certificates.decode_download(keys.APIV3, cjson.encode({ data = { entry(keys.CERT2, k.cert1_pem) } }))
      assert.matches("does not match", err2.message)
      local _, err3 = certificates.decode_download(keys.APIV3, '{"data":[]}')
      assert.matches("no certificate", err3.message)
      local _, err4 = certificates.decode_download(keys.APIV3, '{"code":"SYSTEM_ERROR"}')
      assert.matches("no data", err4.message)
    end)
  end)

  describe("sensitive fields", function()
    it("encrypts with OAEP SHA-1 that openssl pkeyutl decrypts, naming the serial used", function()
      local ct, serial = assert(pay:encrypt("张三 13800138000"))
      assert.equal(keys.PUB_KEY_ID, serial)
      ossl.write(k.dir .. "/oaep", crypto.base64_decode(ct))
      local ok, out = ossl.run("openssl pkeyutl -decrypt -inkey " .. k.pubkey_path ..
        " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1 -in " .. k.dir .. "/oaep")
      assert.is_true(ok)
      assert.equal("张三 13800138000", out)
      local _, cserial = assert(certpay:encrypt("x"))
      assert.equal(keys.CERT1, cserial)
    end)

    it("refuses more than 214 bytes", function()
      assert.truthy(pay:encrypt(string.rep("a", 214)))
      local v, err = pay:encrypt(string.rep("a", 215))
      assert.is_nil(v)
      assert.equal("input", err.kind)
    end)

    it("decrypts downstream fields encrypted by openssl to the merchant key", function()
      ossl.write(k.dir .. "/plain", "6222 0000 1111 2222")
      local _, ct = ossl.run("openssl pkeyutl -encrypt -pubin -inkey " .. k.merchant_pub_path ..
        " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -in " .. k.dir .. "/plain")
      assert.equal("6222 0000 1111 2222", pay:decrypt_field(crypto.base64_encode(ct)))
      assert.equal("input", select(2, pay:decrypt_field("%%")).kind)
    end)
  end)

  describe("notifications", function()
    local function notification(plain, o)
      o = o or {}
      local nonce = o.nonce or crypto.nonce(12)
      local ct = py_gcm(o.key or keys.APIV3, nonce, "transaction", plain, k.dir)
      local raw = cjson.encode({ id = "EV-2018022511223320873", create_time = "2015-05-20T13:29:35+08:00",
        resource_type = "encrypt-resource", event_type = "TRANSACTION.SUCCESS", summary = "支付成功",
        resource = { original_type = "transaction", algorithm = "AEAD_AES_256_GCM", ciphertext = ct,
          associated_data = "transaction", nonce = nonce } })
      return raw, keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, raw, o.ts or now)
    end
    local txn = '{"mchid":"1900000001","out_trade_no":"1217752501201407033233368018","amount":{"total":100}}'

    it("verifies, decrypts and decodes", function()
      local p = assert(pay_mod.new{ mchid = keys.MCHID, serial_no = keys.SERIAL, private_key = k.merchant_pem,
        apiv3_key = keys.APIV3, platform_public_key = k.pubkey_pem, platform_public_key_id = keys.PUB_KEY_ID })
      local raw, h = notification(txn)
      local ev = assert(p:notification(h, raw, now))
      assert.equal("TRANSACTION.SUCCESS", ev.event_type)
      assert.equal(txn, ev.plaintext)
      assert.equal("1217752501201407033233368018", ev.data.out_trade_no)
      assert.equal("08F78BB5AF0610D302", ev.request_id)
    end)

    it("refuses a replay within the window", function()
      local raw, h = notification(txn)
      assert.truthy(pay:notification(h, raw, now))
      local ev, err = pay:notification(h, raw, now + 10)
      assert.is_nil(ev)
      assert.equal("replay", err.reason)
      -- another merchant object has its own cache
      local other = assert(pay_mod.new{ mchid = "1900000002", serial_no = keys.SERIAL, private_key = k.merchant_pem,
        apiv3_key = keys.APIV3, platform_public_key = k.pubkey_pem, platform_public_key_id = keys.PUB_KEY_ID })
      assert.truthy(other:notification(h, raw, now))
    end)

    it("names every failure", function()
      local raw, h = notification(txn)
      h["Wechatpay-Signature"] = nil
      assert.equal("missing_header", select(2, pay:notification(h, raw, now)).reason)
      raw, h = notification(txn, { ts = now - 400 })
      assert.equal("skew", select(2, pay:notification(h, raw, now)).reason)
      raw, h = notification(txn)
      h["Wechatpay-Serial"] = keys.CERT2
      assert.equal("unknown_serial", select(2, pay:notification(h, raw, now)).reason)
      raw, h = notification(txn)
      assert.equal("bad_signature", select(2, pay:notification(h, raw:gsub("TRANSACTION", "REFUND"), now)).reason)
      raw, h = notification(txn)
      h["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" .. h["Wechatpay-Signature"]
      assert.equal("probe", select(2, pay:notification(h, raw, now)).reason)
      raw, h = notification(txn, { key = string.rep("k", 32) })
      assert.equal("gcm_tag", select(2, pay:notification(h, raw, now)).reason)
      raw = '{"id":"x"}'
      h = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, raw, now)
      assert.equal("bad_resource", select(2, pay:notification(h, raw, now)).reason)
    end)

    it("accepts only the raw body string", function()
      local raw, h = notification(txn)
      assert.has_error(function() pay:notification(h, cjson.decode(raw), now) end)
      assert.has_error(function() pay:notification(h, nil, now) end)
      assert.has_error(function() pay:notification("headers", raw, now) end)
    end)
  end)

  describe("replay cache", function()
    it("forgets entries after the ttl and sweeps when full", function()
      local rc = replay.new{ ttl = 600, max = 10 }
      assert.is_true(rc:check("1:a", 1000))
      assert.is_false(rc:check("1:a", 1599))
      assert.is_true(rc:check("1:a", 1601))
      for i = 1, 20 do assert.is_true(rc:check("k" .. i, 3000 + i * 100)) end
      assert.is_true(rc.n <= 10)
      assert.is_false(rc:check("k20", 5000))
    end)
  end)
end)

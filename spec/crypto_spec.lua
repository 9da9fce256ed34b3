-- wxhw.crypto against published vectors and the OpenSSL command line.
local crypto = require "wxhw.crypto"
local ossl = require "support.openssl"

local hex = crypto.hex
local function unhex(s) return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end

describe("crypto #c", function()
  local dir
  setup(function() dir = ossl.tmpdir() end)
  teardown(function() ossl.rmtree(dir) end)
  after_each(function()
    assert.is_false(crypto._openssl_error_pending(), "OpenSSL error queue left dirty")
  end)

  describe("digests", function()
    it("match FIPS 180 vectors", function()
      assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", hex(crypto.sha1("abc")))
      assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex(crypto.sha256("abc")))
      assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex(crypto.sha256("")))
    end)
    it("MD5 matches RFC 1321 and the openssl CLI (WeCom verify_device names a device by it)", function()
      assert.equal("900150983cd24fb0d6963f7d28e17f72", hex(crypto.md5("abc")))
      assert.equal("d41d8cd98f00b204e9800998ecf8427e", hex(crypto.md5("")))
      local sn = "SN2026LAMP000001" .. ("\0\255"):rep(100)
      ossl.write(dir .. "/md5.bin", sn)
      local _, out = ossl.run("openssl dgst -md5 -r " .. dir .. "/md5.bin")
      assert.equal(out:match("^(%x+)"), hex(crypto.md5(sn)))
    end)
    it("HMAC-SHA256 matches RFC 4231", function()
      assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        hex(crypto.hmac_sha256(string.rep("\11", 20), "Hi There")))
      assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        hex(crypto.hmac_sha256("Jefe", "what do ya want for nothing?")))
      -- test case 6: key longer than the block size
      assert.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        hex(crypto.hmac_sha256(string.rep("\170", 131), "Test Using Larger Than Block-Size Key - Hash Key First")))
    end)
    it("raises on a non-string argument", function()
      assert.has_error(function() crypto.sha256({}) end)
    end)
  end)

  describe("base64", function()
    local vectors = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==", fooba = "Zm9vYmE=",
      foobar = "Zm9vYmFy" }
    it("encodes and decodes RFC 4648 vectors", function()
      for plain, enc in pairs(vectors) do
        assert.equal(enc, crypto.base64_encode(plain))
        assert.equal(plain, crypto.base64_decode(enc))
      end
    end)
    it("round-trips every byte value against the openssl CLI", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      local data = table.concat(all):rep(3)
      ossl.write(dir .. "/b64.bin", data)
      local _, out = ossl.run("openssl base64 -A -in " .. dir .. "/b64.bin")
      assert.equal(out, crypto.base64_encode(data))
      assert.equal(data, crypto.base64_decode(out))
    end)
    it("rejects malformed input with a clear error", function()
      for _, bad in ipairs({ "Zm9", "Zm9v\n", "Zm=v", "Z===", "Zm9v!A==", "====", "Zm9vYg=a", " Zm9v" }) do
        local v, err = crypto.base64_decode(bad)
        assert.is_nil(v, bad)
        assert.equal("input", err.kind)
        assert.matches("invalid base64", tostring(err))
      end
    end)
  end)

  describe("randomness", function()
    it("random_bytes gives the requested length and differs each time", function()
      assert.equal(0, #crypto.random_bytes(0))
      local a, b = crypto.random_bytes(32), crypto.random_bytes(32)
      assert.equal(32, #a)
      assert.not_equal(a, b)
      assert.has_error(function() crypto.random_bytes(-1) end)
    end)
    it("nonce uses only [0-9A-Za-z] and covers the alphabet", function()
      local seen = {}
      for _ = 1, 50 do
        local n = crypto.nonce(32)
        assert.equal(32, #n)
        assert.is_nil(n:find("[^%w]"))
        for c in n:gmatch(".") do seen[c] = true end
      end
      local count = 0
      for _ in pairs(seen) do count = count + 1 end
      assert.is_true(count == 62, "only " .. count .. " distinct characters")
      assert.equal(32, #crypto.nonce())
    end)
  end)

  describe("RSA", function()
    local keypath, pubpath, key, pub
    setup(function()
      keypath, pubpath = ossl.genkey(dir, "rsa2048")
      key = assert(crypto.private_key(ossl.read(keypath)))
      pub = assert(crypto.public_key(ossl.read(pubpath)))
    end)

    it("signs exactly as openssl dgst -sha256 -sign (PKCS#8)", function()
      local msg = "GET\n/v3/iotmanage/devices?limit=100&offset=0\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
      ossl.write(dir .. "/msg", msg)
      local _, want = ossl.run("openssl dgst -sha256 -sign " .. keypath .. " " .. dir .. "/msg")
      assert.equal(256, #want)
      assert.equal(hex(want), hex(key:sign(msg)))
      assert.is_true(pub:verify(msg, want))
    end)

    it("loads PKCS#1 keys and signs identically to the CLI", function()
      local p1 = ossl.genkey(dir, "rsa-pkcs1")
      local pem = ossl.read(p1)
      assert.matches("BEGIN RSA PRIVATE KEY", pem)
      local k = assert(crypto.private_key(pem))
      ossl.write(dir .. "/m2", "hello")
      local _, want = ossl.run("openssl dgst -sha256 -sign " .. p1 .. " " .. dir .. "/m2")
      assert.equal(want, k:sign("hello"))
    end)

    it("verify answers false for tampered messages and signatures", function()
      local sig = key:sign("payload")
      assert.is_true(pub:verify("payload", sig))
      assert.is_false(pub:verify("payload!", sig))
      local bad = string.char((sig:byte(1) + 1) % 256) .. sig:sub(2)
      assert.is_false(pub:verify("payload", bad))
      assert.is_false(pub:verify("payload", sig:sub(1, 100)))
      assert.is_false(pub:verify("payload", ""))
    end)

    it("OAEP (SHA-1/MGF1-SHA-1) interoperates with openssl pkeyutl both ways", function()
      local secret = "13800138000"
      local ct = assert(pub:encrypt_oaep(secret))
      assert.equal(256, #ct)
      assert.not_equal(ct, pub:encrypt_oaep(secret)) -- randomised
      ossl.write(dir .. "/oaep.bin", ct)
      local ok, out = ossl.run("openssl pkeyutl -decrypt -inkey " .. keypath ..
        " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1 -in " .. dir .. "/oaep.bin")
      assert.is_true(ok)
      assert.equal(secret, out)
      ossl.write(dir .. "/plain", "张三")
      local _, ct2 = ossl.run("openssl pkeyutl -encrypt -pubin -inkey " .. pubpath ..
        " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -in " .. dir .. "/plain")
      assert.equal("张三", key:decrypt_oaep(ct2))
    end)

    it("OAEP rejects oversize plaintext and corrupted ciphertext", function()
      assert.truthy(pub:encrypt_oaep(string.rep("x", 214)))
      local v, err = pub:encrypt_oaep(string.rep("x", 215))
      assert.is_nil(v)
      assert.matches("too long", err.message)
      local ct = pub:encrypt_oaep("abc")
      v, err = key:decrypt_oaep(ct:sub(1, 255) .. "x")
      assert.is_nil(v)
      assert.matches("OAEP decryption failed", err.message)
    end)

    it("tostring shows type and size, never key material", function()
      local s = tostring(key)
      assert.matches("^wxhw.Key: RSA 2048%-bit private key", s)
      assert.is_nil(s:find("BEGIN"))
      assert.matches("^wxhw.PublicKey: RSA 2048%-bit public key", tostring(pub))
      assert.equal("rsa", key:type())
      assert.equal(2048, key:bits())
    end)

    it("public_pem round-trips through the CLI", function()
      local pem = key:public_pem()
      assert.equal(ossl.read(pubpath), pem)
    end)
  end)

  describe("EC P-256", function()
    local keypath, pubpath, key, pub
    setup(function()
      keypath, pubpath = ossl.genkey(dir, "ec")
      key = assert(crypto.private_key(ossl.read(keypath)))
      pub = assert(crypto.public_key(ossl.read(pubpath)))
    end)

    it("ECDSA signatures verify with openssl dgst -verify", function()
      local msg = "6365_640122050524"
      local sig = key:sign(msg)
      assert.equal(0x30, sig:byte(1)) -- DER SEQUENCE
      ossl.write(dir .. "/ecmsg", msg)
      ossl.write(dir .. "/ecsig", sig)
      local ok, out = ossl.run("openssl dgst -sha256 -verify " .. pubpath .. " -signature " .. dir .. "/ecsig " .. dir .. "/ecmsg")
      assert.is_true(ok, out)
      assert.matches("Verified OK", out)
    end)

    it("verifies signatures made by the CLI", function()
      ossl.write(dir .. "/ecmsg2", "abc")
      local _, sig = ossl.run("openssl dgst -sha256 -sign " .. keypath .. " " .. dir .. "/ecmsg2")
      assert.is_true(pub:verify("abc", sig))
      assert.is_false(pub:verify("abd", sig))
    end)

    it("loads SEC1 'EC PRIVATE KEY' PEM", function()
      local p = ossl.genkey(dir, "ec-sec1")
      local pem = ossl.read(p)
      assert.matches("BEGIN EC PRIVATE KEY", pem)
      local k = assert(crypto.private_key(pem))
      assert.equal("ec", k:type())
      assert.is_true(k:public_key():verify("m", k:sign("m")))
    end)

    it("generate_ec_key makes P-256 keys the CLI accepts", function()
      local k = crypto.generate_ec_key()
      assert.equal(256, k:bits())
      local pem = k:private_pem()
      ossl.write(dir .. "/gen.pem", pem)
      local ok, out = ossl.run("openssl pkey -in " .. dir .. "/gen.pem -noout -text")
      assert.is_true(ok)
      assert.matches("prime256v1", out)
      assert.matches("ASN1 OID: prime256v1", out)
    end)

    it("OAEP needs an RSA key", function()
      local v, err = pub:encrypt_oaep("x")
      assert.is_nil(v)
      assert.equal("RSA key required for OAEP", err.message)
    end)
  end)

  describe("bad keys", function()
    it("garbage, truncated and wrong-type PEM give clear errors", function()
      local keypath, pubpath = ossl.genkey(dir, "rsa2048", "bad")
      local pem = ossl.read(keypath)
      local cases = {
        { "", "not a PEM private key" },
        { "hello", "not a PEM private key" },
        { pem:sub(1, 300), "not a PEM private key" },
        { ossl.read(pubpath), "not a PEM private key" },
        { pem:gsub("MII", "MIJ", 1), "not a PEM private key" },
      }
      for _, c in ipairs(cases) do
        local k, err = crypto.private_key(c[1])
        assert.is_nil(k)
        assert.equal("crypto", err.kind)
        assert.matches(c[2], err.message, 1, true)
        assert.is_false(crypto._openssl_error_pending())
      end
      local p, err = crypto.public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
      assert.is_nil(p)
      assert.equal("not a PEM public key or certificate", err.message)
    end)

    it("rejects other curves and key types by name", function()
      local k, err = crypto.private_key(ossl.read((ossl.genkey(dir, "ec-secp384r1"))))
      assert.is_nil(k)
      assert.matches("P%-256", err.message)
      k, err = crypto.private_key(ossl.read((ossl.genkey(dir, "ed25519"))))
      assert.is_nil(k)
      assert.matches("unsupported key type", err.message)
    end)

    it("refuses encrypted keys without prompting", function()
      local keypath = ossl.genkey(dir, "rsa2048", "enc")
      assert(ossl.run("openssl pkey -in " .. keypath .. " -aes256 -passout pass:secret -out " .. dir .. "/enc-key.pem"))
      local k, err = crypto.private_key(ossl.read(dir .. "/enc-key.pem"))
      assert.is_nil(k)
      assert.matches("encrypted", err.message)
    end)

    it("a closed key raises on use and closing twice is harmless", function()
      local k = crypto.generate_ec_key()
      k:close()
      k:close()
      assert.has_error(function() k:sign("x") end, "wxhw.Key is closed")
      assert.equal("wxhw.Key (closed)", tostring(k))
    end)

    it("rejects a PublicKey where a Key is expected", function()
      local k = crypto.generate_ec_key()
      assert.has_error(function() k.sign(k:public_key(), "x") end)
    end)
  end)

  describe("AES-GCM", function()
    it("matches the GCM spec test cases 13 and 14 (AES-256)", function()
      local key, iv = string.rep("\0", 32), string.rep("\0", 12)
      assert.equal("530f8afbc74536b9a963b4f1c4cb738b", hex(crypto.aes_gcm_encrypt(key, iv, "", "")))
      assert.equal("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
        hex(crypto.aes_gcm_encrypt(key, iv, "", string.rep("\0", 16))))
    end)

    it("matches test case 16 (AES-256, AAD, 60-byte plaintext)", function()
      local key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
      local iv = unhex("cafebabefacedbaddecaf888")
      local aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
      local p = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
      local c = crypto.aes_gcm_encrypt(key, iv, aad, p)
      assert.equal("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662" ..
        "76fc6ece0f4e1768cddf8853bb2d551b", hex(c))
      assert.equal(p, crypto.aes_gcm_decrypt(key, iv, aad, c))
    end)

    it("round-trips WeChat Pay style (32-byte ASCII key, 12-char nonce) and other IV lengths", function()
      local key = "0123456789abcdef0123456789abcdef"
      for _, nonce in ipairs({ "abcdefghijkl", "short", string.rep("n", 64) }) do
        local ct = crypto.aes_gcm_encrypt(key, nonce, "certificate", "-----BEGIN CERTIFICATE-----")
        assert.equal("-----BEGIN CERTIFICATE-----", crypto.aes_gcm_decrypt(key, nonce, "certificate", ct))
      end
    end)

    it("detects tampering of ciphertext, tag, AAD, nonce and key", function()
      local key, nonce = string.rep("k", 32), "123456789012"
      local ct = crypto.aes_gcm_encrypt(key, nonce, "aad", "hello world")
      local flip = function(s, i) return s:sub(1, i - 1) .. string.char((s:byte(i) + 1) % 256) .. s:sub(i + 1) end
      for _, case in ipairs({
        { key, nonce, "aad", flip(ct, 1) },
        { key, nonce, "aad", flip(ct, #ct) },
        { key, nonce, "aaD", ct },
        { key, "123456789013", "aad", ct },
        { string.rep("K", 32), nonce, "aad", ct },
        { key, nonce, "aad", ct:sub(1, 10) },
      }) do
        local v, err = crypto.aes_gcm_decrypt(case[1], case[2], case[3], case[4])
        assert.is_nil(v)
        assert.equal("crypto", err.kind)
      end
      local v, err = crypto.aes_gcm_decrypt(string.rep("k", 31), nonce, "", ct)
      assert.is_nil(v)
      assert.matches("16, 24 or 32", err.message)
    end)

    it("agrees with Python cryptography where it is installed", function()
      local ok = ossl.run("python3 -c 'import cryptography'")
      if not ok then return pending("python3 cryptography not installed") end
      local key, nonce, aad, plain = string.rep("z", 32), "nonce-12-byt", "certificate", "resource plaintext"
      local _, out = ossl.run("python3 -c \"from cryptography.hazmat.primitives.ciphers.aead import AESGCM; " ..
        "print(AESGCM(b'" .. key .. "').encrypt(b'" .. nonce .. "', b'" .. plain .. "', b'" .. aad .. "').hex())\"")
      assert.equal(out:gsub("%s+$", ""), hex(crypto.aes_gcm_encrypt(key, nonce, aad, plain)))
    end)
  end)

  describe("AES-CBC", function()
    it("matches openssl enc -aes-256-cbc -nopad", function()
      local key, iv = string.rep("\1", 32), string.rep("\2", 16)
      local data = string.rep("0123456789abcdef", 4)
      ossl.write(dir .. "/cbc.in", data)
      local _, want = ossl.run("openssl enc -aes-256-cbc -nopad -K " .. hex(key) .. " -iv " .. hex(iv) .. " -in " .. dir .. "/cbc.in")
      assert.equal(hex(want), hex(crypto.aes_cbc_encrypt(key, iv, data)))
      assert.equal(data, crypto.aes_cbc_decrypt(key, iv, want))
    end)
    it("rejects partial blocks and wrong IV sizes", function()
      local v, err = crypto.aes_cbc_decrypt(string.rep("\1", 32), string.rep("\2", 16), "abc")
      assert.is_nil(v)
      assert.matches("multiple of 16", err.message)
      v, err = crypto.aes_cbc_encrypt(string.rep("\1", 32), "short", string.rep("a", 16))
      assert.is_nil(v)
      assert.matches("IV must be 16", err.message)
    end)
  end)

  describe("certificates", function()
    it("reads serial (uppercase hex), validity and key", function()
      local keypath = ossl.genkey(dir, "rsa2048", "certkey")
      local crt = ossl.selfsigned(dir, keypath, "5157f09efdc096de15ebe81a47057a7232f1b8e1")
      local c = assert(crypto.certificate(ossl.read(crt)))
      assert.equal("5157F09EFDC096DE15EBE81A47057A7232F1B8E1", c.serial)
      local _, dates = ossl.run("openssl x509 -in " .. crt .. " -noout -dates -dateopt iso_8601")
      local function epoch(s)
        local y, mo, d, h, mi, se = s:match("(%d+)-(%d+)-(%d+) (%d+):(%d+):(%d+)")
        local p = io.popen(string.format("date -u -d '%s-%s-%s %s:%s:%s' +%%s", y, mo, d, h, mi, se))
        local v = tonumber(p:read("*l")); p:close(); return v
      end
      assert.equal(epoch(dates:match("notBefore=([^\n]+)")), c.not_before)
      assert.equal(epoch(dates:match("notAfter=([^\n]+)")), c.not_after)
      assert.matches("CN=wxhw test", c.subject)
      local key = crypto.private_key(ossl.read(keypath))
      assert.is_true(c.public_key:verify("x", key:sign("x")))
      -- public_key() also accepts the certificate
      assert.is_true(crypto.public_key(ossl.read(crt)):verify("y", key:sign("y")))
    end)
    it("rejects non-certificates", function()
      local c, err = crypto.certificate("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
      assert.is_nil(c)
      assert.matches("not a PEM certificate", err.message)
    end)
  end)
end)

-- The C WXBizMsgCrypt engine (wxhw.crypto.msgcrypt_engine) and its JSON
-- envelope scan: published vectors
-- (developers.weixin.qq.com/miniprogram/dev/framework/server-ability/message-push.html), the openssl CLI as
-- an independent peer, bad input, and cjson as the oracle of the envelope.
local crypto = require "wxhw.crypto"
local ossl = require "support.openssl"
local cjson = require "cjson.safe"

local hex = crypto.hex
local TOKEN, AESKEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"
local KEY = crypto.base64_decode(AESKEY .. "=")
local ENCRYPT = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
local SIG = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
local PLAIN = '{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'

local function be32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

-- Encrypts arbitrary framed bytes with the openssl CLI (no wxhw code involved).
local function cli_encrypt(dir, full)
  ossl.write(dir .. "/frame.in", full)
  local ok, ct = ossl.run("openssl enc -aes-256-cbc -nopad -K " .. hex(KEY) .. " -iv " .. hex(KEY:sub(1, 16)) ..
    " -in " .. dir .. "/frame.in")
  assert(ok, "openssl enc failed")
  return crypto.base64_encode(ct)
end

local function framed(msg, rid, pad_override)
  local full = string.rep("r", 16) .. be32(#msg) .. msg .. rid
  local pad = 32 - #full % 32
  return full .. (pad_override or string.rep(string.char(pad), pad))
end

local oracle = require "support.envelope_oracle"

describe("msgcrypt engine #c", function()
  local dir, e
  setup(function() dir = ossl.tmpdir() end)
  teardown(function() ossl.rmtree(dir) end)
  before_each(function() e = crypto.msgcrypt_engine(TOKEN, KEY, APPID) end)
  after_each(function()
    assert.is_false(crypto._openssl_error_pending(), "OpenSSL error queue left dirty")
  end)

  describe("published vectors", function()
    it("signature, open and decrypt", function()
      assert.equal(SIG, e:signature("1714112445", "415670741", ENCRYPT))
      assert.equal(PLAIN, e:open(SIG, "1714112445", "415670741", ENCRYPT))
      assert.equal(PLAIN, e:decrypt(ENCRYPT))
    end)
    it("open_json reads the envelope, escaped or not", function()
      local body = '{"ToUserName":"gh_97417a04a28d","Encrypt":"' .. ENCRYPT .. '"}'
      assert.equal(PLAIN, e:open_json(SIG, "1714112445", "415670741", body))
      assert.equal(PLAIN, e:open_json(SIG, "1714112445", "415670741", (body:gsub("/", "\\/"))))
    end)
    it("seal with a given random prefix", function()
      local enc, sig, nonce = e:seal('{"demo_resp":"good luck"}', "1713424427", "415670741", "707722b803182950")
      assert.equal("ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ==", enc)
      assert.equal("1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1", sig)
      assert.equal("415670741", nonce)
    end)
  end)

  describe("against the openssl CLI", function()
    it("opens what openssl enc encrypted, for message lengths around the block sizes", function()
      for _, n in ipairs({ 0, 1, 11, 12, 13, 31, 32, 33, 100, 1000 }) do
        local msg = ("m"):rep(n)
        local enc = cli_encrypt(dir, framed(msg, APPID))
        assert.equal(msg, e:open(e:signature("1", "n", enc), "1", "n", enc))
      end
    end)
    it("seals what openssl enc decrypts to the WXBizMsgCrypt framing", function()
      local msg = '{"errcode":0,"errmsg":"ok"}'
      local enc, sig, nonce = e:seal(msg, "1700000000")
      assert.matches("^%w%w%w%w%w%w%w%w%w%w$", nonce)
      -- signature: sha1 of the sorted strings, by Python's hashlib
      local ok, want = ossl.run("python3 -c \"import hashlib; print(hashlib.sha1(''.join(sorted(['" .. TOKEN ..
        "', '1700000000', '" .. nonce .. "', '" .. enc .. "'])).encode()).hexdigest())\"")
      assert(ok)
      assert.equal(want:gsub("%s+$", ""), sig)
      ossl.write(dir .. "/seal.bin", crypto.base64_decode(enc))
      local ok2, full = ossl.run("openssl enc -d -aes-256-cbc -nopad -K " .. hex(KEY) .. " -iv " ..
        hex(KEY:sub(1, 16)) .. " -in " .. dir .. "/seal.bin")
      assert(ok2)
      local pad = full:byte(#full)
      assert.equal(string.rep(string.char(pad), pad), full:sub(-pad))
      assert.equal(be32(#msg) .. msg .. APPID, full:sub(17, #full - pad))
      assert.not_equal(full:sub(1, 16), (crypto.base64_decode(e:seal(msg, "1")) or ""):sub(1, 16))
    end)
  end)

  describe("random prefix and nonce", function()
    local function prefix(enc) return crypto.aes_cbc_decrypt(KEY, KEY:sub(1, 16), crypto.base64_decode(enc)):sub(1, 16) end
    it("differ between seals, also across many pool refills", function()
      local seen, nonces = {}, {}
      for _ = 1, 600 do -- 600 x 28 bytes: four 4 KiB refills
        local enc, _, nonce = e:seal("x", "1")
        local p = prefix(enc)
        assert.is_nil(seen[p]); assert.is_nil(nonces[nonce])
        seen[p], nonces[nonce] = true, true
        assert.matches("^%w%w%w%w%w%w%w%w%w%w$", nonce)
      end
    end)
    it("a forked process does not reuse the parent's pool", function()
      if not rawget(_G, "jit") then return pending("forks through LuaJIT's ffi") end
      local ffi = require "ffi"
      pcall(ffi.cdef, "int fork(void); int waitpid(int, int *, int); void _exit(int);")
      e:seal("warm", "1") -- fills the pool in this process
      local path = dir .. "/child.txt"
      io.stdout:flush()
      local pid = ffi.C.fork()
      if pid == 0 then
        local f = io.open(path, "w")
        f:write((e:seal("x", "1")))
        f:close()
        ffi.C._exit(0)
      end
      assert.truthy(pid > 0)
      ffi.C.waitpid(pid, nil, 0)
      local child = ossl.read(path)
      assert.not_equal(prefix(child), prefix((e:seal("x", "1"))))
    end)
  end)

  describe("bad input", function()
    local function try(enc) return e:open(e:signature("1", "n", enc), "1", "n", enc) end

    it("wrong, missing or malformed msg_signature", function()
      for _, sig in ipairs({ SIG:sub(1, 39) .. "4", SIG:upper(), SIG .. "0", "", false, 5 }) do
        local v, reason, msg = e:open(sig, "1714112445", "415670741", ENCRYPT)
        assert.is_nil(v)
        assert.equal("validate_signature", reason)
        assert.equal("msg_signature mismatch", msg)
      end
    end)
    it("tampered ciphertext: signature first, framing when re-signed", function()
      local enc = ENCRYPT:sub(1, 10) .. (ENCRYPT:sub(11, 11) == "A" and "B" or "A") .. ENCRYPT:sub(12)
      assert.equal("validate_signature", select(2, e:open(SIG, "1714112445", "415670741", enc)))
      local raw = crypto.base64_decode(ENCRYPT)
      local i = #raw - 20
      local v, reason = try(crypto.base64_encode(raw:sub(1, i - 1) .. string.char((raw:byte(i) + 7) % 256) .. raw:sub(i + 1)))
      assert.is_nil(v)
      assert.truthy(reason == "illegal_buffer" or reason == "validate_receive_id", reason)
    end)
    it("padding outside 1..32 and inconsistent padding", function()
      local base = string.rep("r", 16) .. be32(1) .. "m" .. APPID
      local n = 64 - #base
      local cases = {
        { string.rep("\0", n), "bad padding value 0" },
        { string.rep("\5", n - 1) .. "\33", "bad padding value 33" },
        { string.rep("\1", n - 1) .. string.char(n), "inconsistent padding" },
      }
      for _, c in ipairs(cases) do
        local v, reason, msg = try(cli_encrypt(dir, base .. c[1]))
        assert.is_nil(v)
        assert.equal("illegal_buffer", reason)
        assert.equal(c[2], msg)
      end
      -- padding 32 over a 32-byte message: nothing left for the header
      local v, reason, msg = try(cli_encrypt(dir, string.rep(" ", 32)))
      assert.is_nil(v); assert.equal("illegal_buffer", reason); assert.equal("plaintext too short", msg)
    end)
    it("length field beyond the data (oversize, up to 2^32 - 1)", function()
      for _, len in ipairs({ 2 ^ 31 - 1, 2 ^ 32 - 1, #APPID + 2 }) do
        local body = string.rep("r", 16) .. be32(len) .. "m" .. APPID
        local pad = 32 - #body % 32
        local v, reason, msg = try(cli_encrypt(dir, body .. string.rep(string.char(pad), pad)))
        assert.is_nil(v)
        assert.equal("illegal_buffer", reason)
        assert.equal(("length field %d exceeds the decrypted data"):format(len), msg)
      end
    end)
    it("wrong receive_id, also one that is a prefix or extension of ours", function()
      for _, rid in ipairs({ "wx0000000000000000", APPID:sub(1, -2), APPID .. "x", "" }) do
        local v, reason = try(cli_encrypt(dir, framed("hi", rid)))
        assert.is_nil(v)
        assert.equal("validate_receive_id", reason)
      end
    end)
    it("non-base64, bad block length, empty Encrypt", function()
      for _, enc in ipairs({ "not base64!", "AAA", "AA==AAAA", "AAAA\n", "é===" }) do
        local v, reason = try(enc)
        assert.is_nil(v); assert.equal("decode_base64", reason)
      end
      local v, reason, msg = try(crypto.base64_encode(string.rep("a", 48)))
      assert.is_nil(v); assert.equal("illegal_buffer", reason)
      assert.equal("ciphertext length 48 is not a positive multiple of 32", msg)
      v, reason = e:open(SIG, "1", "n", "")
      assert.is_nil(v); assert.equal("parse", reason)
      v, reason = e:decrypt("")
      assert.is_nil(v); assert.equal("illegal_buffer", reason)
    end)
    it("constructor arguments", function()
      assert.has_error(function() crypto.msgcrypt_engine(TOKEN, KEY:sub(2), APPID) end)
      assert.has_error(function() crypto.msgcrypt_engine("", KEY, APPID) end)
      assert.has_error(function() crypto.msgcrypt_engine(TOKEN, KEY, "") end)
      assert.has_error(function() e:seal("x", "1", "n", "short") end)
    end)
    it("tostring shows neither token nor key; a closed engine refuses work", function()
      local s = tostring(e)
      assert.matches("receive_id=" .. APPID, s, 1, true)
      assert.is_nil(s:find(TOKEN, 1, true))
      assert.is_nil(s:find(hex(KEY), 1, true))
      getmetatable(e).__close(e)
      getmetatable(e).__close(e) -- twice is harmless
      assert.matches("closed", tostring(e))
      assert.has_error(function() e:decrypt(ENCRYPT) end)
    end)
  end)

  describe("JSON envelope", function()
    local ENC = "+qdx1OKCy+5JPCBF/Ww70tm0fJGb2Jmeia4FCB7kao+/Q5c="
    it("reads what cjson reads, or defers to it (never a different answer)", function()
      local bodies = {
        '{"ToUserName":"gh_1","Encrypt":"' .. ENC .. '"}',
        '{"Encrypt":"a","Encrypt":"b"}',                      -- last duplicate wins
        '{"encrypt":"lower"}', '{"encrypt":"l","Encrypt":"u"}',
        '{"Encrypt":"a\\n\\t\\"\\\\\\/\\b\\f\\r"}',
        '{"x":[1,-2.5e+3,true,false,null,{"y":[]}],"Encrypt":"v"}',
        '{"Encrypt":false,"encrypt":"l"}', '{"Encrypt":null}', '{"Encrypt":"\\u0041"}',
        '{"Encr\\u0079pt":"x","Encrypt":"y"}', '{"Encrypt":"a"} ', '{"Encrypt":"a"}x', '{"Encrypt":"a",}',
        '{"Encrypt":01}', '{"Encrypt":"a","n":1.}', '{"Encrypt":"a","n":-}', '{"Encrypt":"é"}',
        '[{"Encrypt":"a"}]', '{"a":{"Encrypt":"nested"}}', ' {"Encrypt":"a"}', '\v{"Encrypt":"a"}',
        '{"Encrypt":"a"', '{"Encrypt":"a\\', '{"Encrypt" "a"}', '{"Encrypt":"a\0"}', '{}', '{',
        string.rep('{"a":', 40) .. '1' .. string.rep("}", 40),
      }
      for _, body in ipairs(bodies) do
        local want, got = oracle(body), crypto.json_envelope(body)
        if got ~= nil then assert.equal(want, got, body) end
      end
      assert.equal(ENC, crypto.json_envelope(bodies[1]))
      assert.equal("b", crypto.json_envelope(bodies[2]))
      assert.equal("u", crypto.json_envelope(bodies[4]))
      assert.equal('a\n\t"\\/\b\f\r', crypto.json_envelope(bodies[5]))
      assert.is_nil(crypto.json_envelope('{"Encrypt":"a"}x'))
    end)
    it("agrees with cjson on thousands of mutated envelopes", function()
      local base = '{"ToUserName":"gh_1","n":[1,2.5,{"k":null}],"Encrypt":"' .. ENC:gsub("/", "\\/") .. '"}'
      local alphabet = '{}[]":,\\/ \t\nabEncrypt0-1e.tfu'
      local seed = 12345
      local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
      local fast, agree = 0, 0
      for _ = 1, 3000 do
        local s = base
        for _ = 1, rnd(3) do
          local i, op = rnd(#s), rnd(3)
          local k = rnd(#alphabet)
          local ch = alphabet:sub(k, k)
          if op == 1 then s = s:sub(1, i - 1) .. s:sub(i + 1)
          elseif op == 2 then s = s:sub(1, i - 1) .. ch .. s:sub(i)
          else s = s:sub(1, i - 1) .. ch .. s:sub(i + 1) end
        end
        local want, got = oracle(s), crypto.json_envelope(s)
        if got ~= nil then
          fast = fast + 1
          assert.equal(want, got, s)
        end
        if got == want then agree = agree + 1 end
      end
      assert.truthy(fast > 300, "the fast path should take most still-valid bodies (" .. fast .. ")")
      assert.truthy(agree > 300)
    end)
    it("open_json defers non-JSON and unusual bodies (false), rejects bad pushes (nil)", function()
      assert.is_false(e:open_json(SIG, "1", "n", "<xml><Encrypt>x</Encrypt></xml>"))
      assert.is_false(e:open_json(SIG, "1", "n", '{"Encrypt":"\\u0041"}'))
      assert.is_false(e:open_json(SIG, "1", "n", '{"Encrypt":5}'))
      local v, reason = e:open_json(SIG, "1", "n", '{"Encrypt":"' .. ENCRYPT .. '"}')
      assert.is_nil(v); assert.equal("validate_signature", reason)
    end)
  end)
end)

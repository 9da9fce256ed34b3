-- The passive reply body in one C call (engine seal_json, mc:reply_body),
-- checked with independent peers: cjson reads the envelope, Python's hashlib
-- recomputes msg_signature, the openssl CLI decrypts Encrypt to the
-- WXBizMsgCrypt framing. #c
local crypto = require "wxhw.crypto"
local msgcrypt = require "wxhw.msgcrypt"
local ossl = require "support.openssl"
local cjson = require "cjson.safe"

local hex = crypto.hex
local TOKEN, AESKEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"
local KEY = crypto.base64_decode(AESKEY .. "=")

local function be32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

describe("msgcrypt reply body #c", function()
  local dir, mc
  setup(function() dir = ossl.tmpdir() end)
  teardown(function() ossl.rmtree(dir) end)
  before_each(function() mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = AESKEY, receive_id = APPID }) end)
  after_each(function() assert.is_false(crypto._openssl_error_pending(), "OpenSSL error queue left dirty") end)

  local function check(body, keys, msg, ts, ts_is_string)
    local t = assert(cjson.decode(body), body)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    assert.equal(4, n, body)
    local enc, sig, stamp, nonce = t[keys[1]], t[keys[2]], t[keys[3]], t[keys[4]]
    assert.equal(ts_is_string and "string" or "number", type(stamp))
    assert.equal(ts, ts_is_string and stamp or ("%d"):format(stamp))
    assert.matches("^%w%w%w%w%w%w%w%w%w%w$", nonce)
    local ok, want = ossl.run("python3 -c \"import hashlib; print(hashlib.sha1(''.join(sorted(['" .. TOKEN ..
      "', '" .. ts .. "', '" .. nonce .. "', '" .. enc .. "'])).encode()).hexdigest())\"")
    assert(ok)
    assert.equal((want:gsub("%s+$", "")), sig)
    ossl.write(dir .. "/reply.bin", crypto.base64_decode(enc))
    local ok2, full = ossl.run("openssl enc -d -aes-256-cbc -nopad -K " .. hex(KEY) .. " -iv " ..
      hex(KEY:sub(1, 16)) .. " -in " .. dir .. "/reply.bin")
    assert(ok2)
    local pad = full:byte(#full)
    assert.equal(be32(#msg) .. msg .. APPID, full:sub(17, #full - pad))
  end

  it("Mini Program style: Encrypt, MsgSignature, numeric TimeStamp, Nonce", function()
    local msg = '{"errcode":0,"errmsg":"ok"}'
    check(assert(mc:reply_body(msg, "mp_json", 1700000000)), { "Encrypt", "MsgSignature", "TimeStamp", "Nonce" },
      msg, "1700000000")
  end)

  it("WeCom style: lower-case keys, the timestamp as a JSON string", function()
    local msg = ("x"):rep(1000)
    check(assert(mc:reply_body(msg, "wecom_json", "1700000001")), { "encrypt", "msgsignature", "timestamp", "nonce" },
      msg, "1700000001", true)
  end)

  it("answers what reply() answers for the same input, field for field", function()
    local a = cjson.decode(mc:reply_body("hello", "mp_json", 1700000000))
    local b = cjson.decode((mc:reply("hello", "mp_json", 1700000000)))
    for k in pairs(b) do assert.equal(type(b[k]), type(a[k]), k) end
    assert.equal(b.TimeStamp, a.TimeStamp)
    assert.equal("hello", mc:decrypt(a.MsgSignature, ("%d"):format(a.TimeStamp), a.Nonce, a.Encrypt))
  end)

  it("goes the general way for XML and for a timestamp that is not plain digits", function()
    local x = assert(mc:reply_body("hi", "xml", 1700000000))
    assert.matches("^<xml><Encrypt><!%[CDATA%[", x)
    local t = assert(cjson.decode((mc:reply_body("hi", "mp_json", "17e8"))))
    assert.equal(cjson.decode((mc:reply("hi", "mp_json", "17e8"))).TimeStamp, t.TimeStamp)
  end)

  it("one engine keeps every message on the fixed IV across many seals and opens, interleaved", function()
    -- the engine's CBC contexts are never re-initialised (csrc/crypto/msg.c
    -- aes_cbc): each sealed message must still decrypt, prefix included, with
    -- a fresh context and the key's IV, and the openssl CLI must agree on a
    -- few. (A wrong IV on the decrypting side would garble only the prefix,
    -- which the framing drops: the messages still come back whole.)
    local e = crypto.msgcrypt_engine(TOKEN, KEY, APPID)
    local iv = KEY:sub(1, 16)
    for i = 1, 200 do
      local msg = ("m%d:"):format(i) .. ("x"):rep(i % 70)
      -- a known random prefix: CBC with a wrong IV garbles only the first
      -- block, which in this framing is the prefix (the message survives)
      local prefix = ("%016d"):format(i)
      local enc = e:seal(msg, "1700000000", "n" .. i, prefix)
      local full = crypto.aes_cbc_decrypt(KEY, iv, crypto.base64_decode(enc))
      assert.equal(prefix .. be32(#msg) .. msg .. APPID, full:sub(1, 20 + #msg + #APPID), "seal " .. i)
      -- and back through the engine's own decrypt context, between seals
      assert.equal(msg, e:decrypt(enc), "open " .. i)
      if i % 67 == 0 then
        ossl.write(dir .. "/chain.bin", crypto.base64_decode(enc))
        local ok, cli = ossl.run("openssl enc -d -aes-256-cbc -nopad -K " .. hex(KEY) .. " -iv " .. hex(iv) ..
          " -in " .. dir .. "/chain.bin")
        assert(ok)
        assert.equal(full, cli)
      end
    end
  end)

  it("a reply table is sealed as the JSON object it is, flat ones written in C, others through cjson", function()
    local function opened(body)
      local env = cjson.decode(body)
      return cjson.decode((assert(mc:decrypt(env.MsgSignature, ("%d"):format(env.TimeStamp), env.Nonce, env.Encrypt))))
    end
    local same = require("luassert.util").deepcompare -- the comparison assert.same makes
    local rnd = 4242
    local function rand(n) rnd = (rnd * 1103515245 + 12345) % 2147483648; return rnd % n + 1 end
    local pieces = { "a", "\"", "\\", "/", "\n", "\t", "\0", "\127", "\31", "中文", "é", " ", "}", "{", "," }
    local function str()
      local t = {}
      for i = 1, rand(6) - 1 do t[i] = pieces[rand(#pieces)] end
      return table.concat(t)
    end
    local values = { function() return str() end, function() return rand(2) == 1 end, function() return cjson.null end,
                     function() return rand(2^31) - 2^30 end, function() return 2^53 end, function() return -2^53 end }
    local e = crypto.msgcrypt_engine(TOKEN, KEY, APPID)
    for i = 1, 400 do
      local t = {}
      for _ = 1, rand(6) - 1 do t["k" .. str()] = values[rand(#values)]() end
      local body = assert(mc:reply_body(t, "mp_json", 1700000000))
      assert.is_true(same(t, opened(body)), "table " .. i)
      assert.is_string(e:seal_json(t, "1700000000", false), "a flat table is written in C")
    end
    -- not flat, or numbers only cjson prints: the engine declines, cjson writes them
    for _, t in ipairs{ { a = { 1, 2 } }, { a = 1.5 }, { 1, 2, 3 }, { a = 2^60 }, { [true] = 1 } } do
      assert.is_false(e:seal_json(t, "1700000000", false))
      local want = cjson.encode(t) -- nil for a table JSON cannot hold ({ [true] = 1 })
      if want then assert.is_true(same(cjson.decode(want), opened(assert(mc:reply_body(t, "mp_json", 1700000000))))) end
    end
  end)

  it("the engine refuses a timestamp that would need escaping or is not a number", function()
    local e = crypto.msgcrypt_engine(TOKEN, KEY, APPID)
    for _, ts in ipairs{ "", "0123", "17e8", '1"', ("9"):rep(21) } do
      assert.has_error(function() e:seal_json("x", ts, false) end)
    end
  end)
end)

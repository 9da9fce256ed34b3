-- WXBizMsgCrypt against the published Mini Program vectors
-- (developers.weixin.qq.com/miniprogram/dev/framework/server-ability/message-push.html).
local msgcrypt = require "wxhw.msgcrypt"
local crypto = require "wxhw.crypto"
local cjson = require "cjson"

local TOKEN, AESKEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"
local ENCRYPT = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
local PLAIN = '{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'

describe("msgcrypt", function()
  local mc
  before_each(function() mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = AESKEY, receive_id = APPID }) end)

  describe("published vectors", function()
    it("URL verification signature", function()
      assert.equal("f464b24fc39322e44b38aa78f5edd27bd1441696", msgcrypt.url_signature(TOKEN, 1714036504, "1514711492"))
      assert.is_true(mc:verify_url("f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036504", "1514711492"))
    end)
    it("plaintext push signature", function()
      assert.equal("899cf89e464efb63f54ddac96b0a0a235f53aa78", mc:url_signature("1714037059", "486452656"))
    end)
    it("secure push: signatures and decryption", function()
      assert.equal("6c5c811b55cc85e0e1b54100749188c20beb3f5d", mc:url_signature("1714112445", "415670741"))
      assert.equal("046e02f8204d34f8ba5fa3b1db94908f3df2e9b3", mc:signature("1714112445", "415670741", ENCRYPT))
      local msg = assert(mc:decrypt("046e02f8204d34f8ba5fa3b1db94908f3df2e9b3", "1714112445", "415670741", ENCRYPT))
      assert.equal(PLAIN, msg)
      assert.equal(167, #msg)
    end)
    it("secure push through the JSON envelope", function()
      local body = '{"ToUserName":"gh_97417a04a28d","Encrypt":"' .. ENCRYPT .. '"}'
      local msg, fmt = mc:open({ msg_signature = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3",
        timestamp = "1714112445", nonce = "415670741" }, body)
      assert.equal(PLAIN, msg)
      assert.equal("json", fmt)
    end)
    it("reply encryption with a given random prefix", function()
      local enc, sig = mc:encrypt('{"demo_resp":"good luck"}', 1713424427, "415670741", "707722b803182950")
      assert.equal("ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ==", enc)
      assert.equal("1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1", sig)
      local body = mc:reply('{"demo_resp":"good luck"}', "mp_json", 1713424427, "415670741", "707722b803182950")
      local t = cjson.decode(body)
      assert.same({ Encrypt = enc, MsgSignature = sig, TimeStamp = 1713424427, Nonce = "415670741" }, t)
    end)
  end)

  describe("round trips", function()
    it("every envelope style decrypts what it encrypted", function()
      for _, style in ipairs({ "mp_json", "wecom_json", "xml" }) do
        for _, msg in ipairs({ "", "x", string.rep("y", 31), string.rep("z", 32), "<xml>]]></xml>", string.rep("長", 500) }) do
          local body = mc:push_body(msg, style, "1700000000", "nonce1")
          local enc = assert(msgcrypt.envelope_encrypt(body))
          local q = { msg_signature = mc:signature("1700000000", "nonce1", enc), timestamp = "1700000000", nonce = "nonce1" }
          assert.equal(msg, mc:open(q, body))
        end
      end
    end)
    it("XML replies carry the four fields", function()
      local body, enc, sig = mc:reply("success?", "xml", 1, "n")
      assert.equal(enc, msgcrypt.xml_field(body, "Encrypt"))
      assert.equal(sig, msgcrypt.xml_field(body, "MsgSignature"))
      assert.equal("1", msgcrypt.xml_field(body, "TimeStamp"))
    end)
    it("random prefixes differ between encryptions", function()
      assert.not_equal(mc:encrypt("a", 1, "n"), mc:encrypt("a", 1, "n"))
    end)
  end)

  describe("bad input", function()
    local function forge(full)
      -- encrypt arbitrary bytes under the test key, bypassing the framing
      local key = crypto.base64_decode(AESKEY .. "=")
      return crypto.base64_encode(crypto.aes_cbc_encrypt(key, key:sub(1, 16), full))
    end
    local function try(enc)
      return mc:decrypt(mc:signature("1", "n", enc), "1", "n", enc)
    end

    it("wrong msg_signature", function()
      local v, err = mc:decrypt("046e02f8204d34f8ba5fa3b1db94908f3df2e9b4", "1714112445", "415670741", ENCRYPT)
      assert.is_nil(v)
      assert.equal(-40001, err.errcode)
      v, err = mc:decrypt(nil, "1714112445", "415670741", ENCRYPT)
      assert.equal(-40001, err.errcode)
    end)
    it("tampered ciphertext is caught by msg_signature", function()
      local enc = ENCRYPT:sub(1, 10) .. (ENCRYPT:sub(11, 11) == "A" and "B" or "A") .. ENCRYPT:sub(12)
      local v, err = mc:decrypt("046e02f8204d34f8ba5fa3b1db94908f3df2e9b3", "1714112445", "415670741", enc)
      assert.is_nil(v)
      assert.equal(-40001, err.errcode)
    end)
    it("a corrupted last block fails the framing checks even when re-signed", function()
      local raw = crypto.base64_decode(ENCRYPT)
      local i = #raw - 20 -- second-to-last block: garbles the final block's padding/receive_id
      local enc = crypto.base64_encode(raw:sub(1, i - 1) .. string.char((raw:byte(i) + 7) % 256) .. raw:sub(i + 1))
      local v, err = try(enc)
      assert.is_nil(v)
      assert.truthy(err.errcode == -40008 or err.errcode == -40005, tostring(err))
    end)
    it("bad base64 and bad block length", function()
      local v, err = try("not base64!")
      assert.is_nil(v)
      assert.equal(-40010, err.errcode)
      v, err = try(crypto.base64_encode(string.rep("a", 48)))
      assert.equal(-40008, err.errcode)
    end)
    it("padding outside 1..32 and inconsistent padding", function()
      local body = string.rep("r", 16) .. "\0\0\0\1" .. "m" .. APPID
      local n = 64 - #body
      local v, err = try(forge(body .. string.rep("\0", n - 1) .. "\0"))
      assert.is_nil(v); assert.matches("bad padding value 0", err.message)
      v, err = try(forge(body .. string.rep("\5", n - 1) .. "\33"))
      assert.is_nil(v); assert.matches("bad padding value 33", err.message)
      v, err = try(forge(body .. string.rep("\1", n - 1) .. string.char(n)))
      assert.is_nil(v); assert.matches("inconsistent padding", err.message)
    end)
    it("length field beyond the data", function()
      local body = string.rep("r", 16) .. "\127\255\255\255" .. "m" .. APPID
      local pad = 32 - #body % 32
      local v, err = try(forge(body .. string.rep(string.char(pad), pad)))
      assert.is_nil(v)
      assert.matches("length field", err.message)
    end)
    it("wrong receive_id", function()
      local other = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = AESKEY, receive_id = "wx0000000000000000" })
      local enc = other:encrypt("hi", 1, "n")
      local v, err = try(enc)
      assert.is_nil(v)
      assert.equal(-40005, err.errcode)
    end)
    it("illegal EncodingAESKey and missing options", function()
      local v, err = msgcrypt.new{ token = "t", encoding_aes_key = "short", receive_id = APPID }
      assert.is_nil(v)
      assert.equal(-40004, err.errcode)
      v, err = msgcrypt.new{ token = "t", encoding_aes_key = string.rep("A", 42) .. "!", receive_id = APPID }
      assert.equal(-40004, err.errcode)
      assert.has_error(function() msgcrypt.new{ encoding_aes_key = AESKEY, receive_id = APPID } end)
    end)
    it("malformed envelopes", function()
      for _, body in ipairs({ "", "{", '{"Encrypt":5}', "<xml></xml>", "plain" }) do
        local v, err = mc:open({ msg_signature = "x", timestamp = "1", nonce = "n" }, body)
        assert.is_nil(v)
        assert.equal(-40002, err.errcode)
      end
    end)
    it("never shows the token or key in tostring", function()
      local s = tostring(mc)
      assert.is_nil(s:find(TOKEN, 1, true))
      assert.matches("wxba5fad812f8e6fb9", s)
    end)
    it("keeps the token and key only inside the C engine, not in Lua fields", function()
      for k, v in pairs(mc) do
        assert.is_false(v == TOKEN or v == AESKEY, "field " .. tostring(k) .. " holds a secret")
      end
    end)
  end)
end)

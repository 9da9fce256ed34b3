-- The Mini Program envelope is read without cjson when it has WeChat's exact
-- shape; whatever the route, the result must be what a JSON parser reads.
local msgcrypt = require "wxhw.msgcrypt"
local cjson = require "cjson.safe"

local ENC = "+qdx1OKCy+5JPCBF/Ww70tm0fJGb2Jmeia4FCB7kao+/Q5c=" -- base64 with "/" and "+"

local oracle = require "support.envelope_oracle"

describe("msgcrypt.envelope_encrypt (JSON)", function()
  local escaped = ENC:gsub("/", "\\/")
  local bodies = {
    '{"ToUserName":"gh_1","Encrypt":"' .. ENC .. '"}',
    '{"ToUserName":"gh_1","Encrypt":"' .. escaped .. '"}',              -- cjson's own escaping
    ' \n{ "ToUserName" : "gh_1" ,\t"Encrypt" : "' .. ENC .. '" }\r\n',  -- JSON whitespace
    '{"ToUserName":"","Encrypt":""}',
    '{"Encrypt":"' .. ENC .. '","ToUserName":"gh_1"}',                   -- other key order
    '{"ToUserName":"gh_1","Encrypt":"ab\\u002Fcd"}',                     -- other escapes
    '{"ToUserName":"g\\"h","Encrypt":"' .. ENC .. '"}',                  -- escaped quote in the name
    '{"ToUserName":"gh_1","Encrypt":"ab\\"}',                            -- unterminated string
    '{"ToUserName":"gh_1","Encrypt":"ab\\\\"}',                          -- escaped backslash
    '{"ToUserName":"gh_1","Encrypt":"ab\\/\\"}',
    '{"ToUserName":"gh_1","Encrypt":"ab"} x',                            -- trailing garbage
    '{"ToUserName":"gh_1","Encrypt":"ab"}}',
    '{"ToUserName":"gh\n1","Encrypt":"ab"}',                             -- raw control character
    '{"ToUserName":"gh_1","Encrypt":"a\tb"}',
    '{"ToUserName":"gh_1","Encrypt":5}',
  }
  for i, body in ipairs(bodies) do
    it("body " .. i .. " reads as a JSON parser reads it", function()
      local want = oracle(body)
      local got, fmt = msgcrypt.envelope_encrypt(body)
      if want then
        assert.equal(want, got)
        assert.equal("json", fmt)
      else
        assert.is_nil(got)
        assert.equal(-40002, fmt.errcode)
      end
    end)
  end
end)

describe("msgcrypt replies (JSON)", function()
  local mc = assert(msgcrypt.new{ token = "tok", encoding_aes_key = ("K"):rep(43), receive_id = "wx0123456789abcdef" })
  -- c[6]: the timestamp's JSON type (a number for the Mini Program; a string
  -- for WeCom, as both official WeCom SDKs write it)
  local cases = {
    { "mp_json", "Encrypt", "MsgSignature", "TimeStamp", "Nonce", tonumber },
    { "wecom_json", "encrypt", "msgsignature", "timestamp", "nonce", tostring },
  }
  for _, c in ipairs(cases) do
    local ts = c[6]
    it(c[1] .. " with drawn nonce and prefix decrypts and verifies", function()
      local body = assert(mc:reply('{"errcode":0,"errmsg":"ok/"}', c[1], 1700000000))
      local t = assert(cjson.decode(body))
      assert.equal(ts(1700000000), t[c[4]])
      assert.matches("^%w%w%w%w%w%w%w%w%w%w$", t[c[5]])
      assert.equal('{"errcode":0,"errmsg":"ok/"}', assert(mc:decrypt(t[c[3]], "1700000000", t[c[5]], t[c[2]])))
      local t2 = assert(cjson.decode((mc:reply("x", c[1], 1700000000))))
      assert.not_equal(t[c[5]], t2[c[5]])
    end)
    it(c[1] .. " signs the timestamp it sends, also for a float-valued one", function()
      local body = assert(mc:reply("x", c[1], 1700000000.0))
      assert.matches('"' .. c[4] .. (ts == tostring and '":"1700000000"[,}]' or '":1700000000[,}]'), body)
      local t = assert(cjson.decode(body))
      assert.equal("x", assert(mc:decrypt(t[c[3]], "1700000000", t[c[5]], t[c[2]])))
    end)
    it(c[1] .. " stays valid JSON for any timestamp or nonce", function()
      for _, v in ipairs({ { "0123", "n" }, { 17, 'a"b\\' }, { "1", "" }, { 1.5, "x" } }) do
        local t = assert(cjson.decode((assert(mc:reply("x", c[1], v[1], v[2])))))
        assert.equal(ts == tostring and (type(v[1]) == "number" and v[1] % 1 == 0 and ("%d"):format(v[1])
          or tostring(v[1])) or tonumber(v[1]), t[c[4]])
        assert.equal(v[2], t[c[5]])
        assert.equal("x", assert(mc:decrypt(t[c[3]], v[1], v[2], t[c[2]])))
      end
    end)
  end
end)

-- Every parser of unauthenticated bytes costs linear time (issue 14): the
-- query, the headers, the XML/JSON push envelopes (read before the
-- signature is checked), the flat XML of a plaintext push, wxhw.json, the
-- Pay notification headers and body, and whole endpoints. Inputs of 64 KB
-- and 1 MB built to hurt (repeated openers, deep nesting, long lines, many
-- separators); the time per byte must not grow with the size
-- (support.linear). Measured times are printed with WXHW_PRINT_TIMES=1.
local callback = require "wxhw.callback"
local msgcrypt = require "wxhw.msgcrypt"
local json = require "wxhw.json"
local verify = require "wxhw.pay.verify"
local linear = require "support.linear"
local keys = require "support.pay_keys"

local TOKEN, KEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"
local floor = math.floor

-- make(n): `head` then `unit` repeated to about n bytes, then `tail`.
local function rep(head, unit, tail)
  return function(n) return head .. unit:rep(floor((n - #head) / #unit)) .. (tail or "") end
end

local function expect_linear(name, f, make)
  local r = linear.check(f, make)
  if os.getenv("WXHW_PRINT_TIMES") then
    io.stderr:write(("%-58s %10.3f ms %10s ms  x%.2f\n"):format(name, r.small_s * 1e3,
      r.big_s and ("%.3f"):format(r.big_s * 1e3) or "-", r.ratio))
  end
  assert(r.ok, name .. ": " .. tostring(r.why))
end

-- Push bodies built to hurt an envelope scan.
local ENVELOPES = {
  ["XML: repeated <Encrypt><![CDATA[ openers"] = rep("<xml>", "<Encrypt><![CDATA["),
  ["XML: one CDATA, many ]]> not followed by the close"] = rep("<xml><Encrypt><![CDATA[", "]]> "),
  ["XML: repeated <Encrypt> openers, no close"] = rep("<xml>", "<Encrypt>"),
  ["XML: repeated </Encrypt>"] = rep("<xml><Encrypt>", "</Encrypt> "),
  ["XML: a long line with no tag"] = rep("<xml>", "x"),
  ["XML: a huge Encrypt (not base64)"] = rep("<xml><Encrypt><![CDATA[", "A", "]]></Encrypt></xml>"),
  ["JSON: deep nesting [[[["] = rep('{"Encrypt":', "["),
  ["JSON: deep nesting {\"a\":{\"a\":"] = rep("{", '"a":{'),
  ["JSON: a long Encrypt string full of escapes"] = rep('{"Encrypt":"', "\\/", '"}'),
  ["JSON: many members"] = rep("{", '"k":1,', '"Encrypt":"x"}'),
  ["JSON: an unterminated string"] = rep('{"Encrypt":"', "A"),
  ["blanks before anything"] = rep("", " ", "<"),
}

describe("hostile input costs linear time #slow", function()
  local mc
  setup(function() mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID }) end)

  for name, make in pairs(ENVELOPES) do
    it("envelope_encrypt and MsgCrypt:open: " .. name, function()
      expect_linear("envelope " .. name, function(s) msgcrypt.envelope_encrypt(s) end, make)
      local q = { timestamp = "1714112445", nonce = "n", msg_signature = ("0"):rep(40) }
      expect_linear("open " .. name, function(s) assert(not mc:open(q, s)) end, make)
    end)
  end

  it("a push endpoint refuses over max_body at once and parses up to it linearly", function()
    local q = { timestamp = "1714112445", nonce = "n", msg_signature = ("0"):rep(40), encrypt_type = "aes" }
    local opts = { token = TOKEN, encoding_aes_key = KEY, appid = APPID, clock = function() return 1714112445 end }
    local gw = callback.mini_program(opts)
    local body = ENVELOPES["XML: repeated <Encrypt><![CDATA[ openers"](linear.BIG)
    local status, _, msg = gw("POST", q, {}, body)
    assert.equal(413, status)
    assert.equal("body larger than 65536 bytes", msg)
    assert.equal(65536, callback.max_body(gw))
    assert.is_nil(callback.max_body(print))
    opts.max_body = 2 * linear.BIG
    local wide = callback.mini_program(opts)
    for name, make in pairs(ENVELOPES) do
      expect_linear("mini_program endpoint " .. name, function(s)
        local st = wide("POST", q, {}, s)
        assert(st == 400 or st == 403, st)
      end, make)
    end
    local wc = callback.wecom{ token = TOKEN, encoding_aes_key = KEY, receive_id = "ww1", max_body = 100 }
    assert.equal(413, (wc("POST", q, {}, ("x"):rep(101))))
    assert.has_error(function() callback.mini_program{ token = TOKEN, encoding_aes_key = KEY, appid = APPID,
                                                        max_body = 0 } end)
  end)

  it("plaintext-mode bodies: callback.parse_xml (the signature covers the query only)", function()
    local cases = {
      ["many elements"] = rep("<xml>", "<a></a>", "</xml>"),
      ["many openers, no close"] = rep("<xml>", "<a>", "</xml>"),
      ["an unterminated tag name"] = rep("<xml><", "a", "</xml>"),
      ["</xml> and blanks repeated"] = rep("<xml>", "</xml> ", "x"),
      ["CDATA ends not at the end"] = rep("<xml><A><![CDATA[", "]]> ", "</A></xml>"),
      ["entities"] = rep("<xml><A>", "&amp;&lt;", "</A></xml>"),
    }
    for name, make in pairs(cases) do expect_linear("parse_xml " .. name, callback.parse_xml, make) end
  end)

  it("query strings: callback.parse_query reads at most 100 pairs", function()
    local cases = {
      ["many &"] = rep("a=1", "&"),
      ["many pairs"] = rep("", "a=1&"),
      ["many distinct keys"] = function(n)
        local t = {}
        for i = 1, floor(n / 8) do t[i] = ("k%06d"):format(i) end
        return table.concat(t, "&")
      end,
      ["a long escaped value"] = rep("msg_signature=", "%41"),
      ["many ="] = rep("a", "="),
    }
    for name, make in pairs(cases) do expect_linear("parse_query " .. name, callback.parse_query, make) end
    local t = callback.parse_query(rep("", "a=1&")(4000) .. "late=1")
    assert.is_nil(t.late)
    assert.equal("1", callback.parse_query(("x=1&"):rep(99) .. "late=1").late)
  end)

  it("wxhw.json.decode", function()
    local cases = {
      ["deep arrays"] = rep("", "["),
      ["deep objects"] = rep("", '{"a":'),
      ["one long number"] = rep("", "1"),
      ["many big integers"] = rep("[", "123456789012345678901,", "1]"),
      ["a long string of escapes"] = rep('"', "\\u00e9", '"'),
      ["an unterminated string"] = rep('"', "a"),
    }
    for name, make in pairs(cases) do expect_linear("json.decode " .. name, json.decode, make) end
  end)

  it("WeChat Pay headers: wxhw.pay.verify reads them", function()
    local function lookup() return verify.fail("unknown_serial", "no key") end
    local now = os.time()
    local function headers(over)
      local h = { ["wechatpay-timestamp"] = tostring(now), ["wechatpay-nonce"] = "n",
                  ["wechatpay-signature"] = "AAAA", ["wechatpay-serial"] = "S" }
      for k, v in pairs(over) do h[k] = v end
      return h
    end
    local cases = {
      ["a long signature"] = function(n) return headers{ ["wechatpay-signature"] = ("A"):rep(n) } end,
      ["a long timestamp"] = function(n) return headers{ ["wechatpay-timestamp"] = ("1"):rep(n) } end,
      ["a long serial"] = function(n) return headers{ ["wechatpay-serial"] = ("S"):rep(n) } end,
      ["a long signature type"] = function(n) return headers{ ["wechatpay-signature-type"] = ("T"):rep(n) } end,
      ["many headers in mixed case"] = function(n)
        local h = { ["Wechatpay-Timestamp"] = tostring(now), ["Wechatpay-Nonce"] = "n",
                    ["Wechatpay-Signature"] = "AAAA", ["Wechatpay-Serial"] = "S" }
        for i = 1, floor(n / 16) do h[("X-Header-%06d"):format(i)] = "v" end
        return h
      end,
    }
    for name, make in pairs(cases) do
      local sized = function(n) return make(n), n end -- about n bytes of names and values
      expect_linear("pay headers " .. name, function(h) assert(not verify.verify(h, "{}", now, lookup)) end, sized)
    end
  end)

  it("WeChat Pay notifications: a callback.pay endpoint checks hostile bodies", function()
    local k = keys.make()
    finally(k.cleanup)
    local pay = assert(require("wxhw.pay").new{ mchid = keys.MCHID, serial_no = keys.SERIAL,
      private_key = k.merchant_pem, apiv3_key = keys.APIV3, platform_public_key = k.pubkey_pem,
      platform_public_key_id = keys.PUB_KEY_ID })
    local ep = callback.pay{ pay = pay, handler = function() error("must not run") end, max_body = 2 * linear.BIG }
    local cases = {
      ["deep nesting"] = rep('{"resource":', "["),
      ["a long string"] = rep('{"resource":"', "\\/", '"}'),
    }
    for name, make in pairs(cases) do
      expect_linear("pay endpoint " .. name, function(b)
        local h = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, "other body")
        assert.equal(401, (ep("POST", {}, h, b)))
      end, make)
    end
    local small = callback.pay{ pay = pay, handler = function() end }
    local status, h, body = small("POST", {}, {}, ("x"):rep(65537))
    assert.equal(413, status)
    assert.equal("application/json", h["Content-Type"])
    assert.matches('"code":"FAIL"', body)
  end)
end)

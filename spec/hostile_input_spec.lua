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

  it("the check itself fails a quadratic parser (also after its second look)", function()
    -- one plain find over the whole input per 64 bytes of it
    local r = linear.check(function(s)
      for i = 1, #s, 64 do s:find("x", i % 7 + 1, true) end
    end, function(n) return ("a"):rep(n) end)
    assert.is_false(r.ok)
    assert.matches("not linear", r.why)
  end)

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

-- End to end inside nginx: one worker, so a frozen worker would hold up
-- /healthz too. client_max_body_size is above the endpoint's max_body, so
-- the Lua checks are the ones tried.
describe("hostile bodies against the gateway in nginx #slow #nosan", function()
  local socket = require "socket"
  local nginx = require "support.nginx"

  local function exchange(port, head, body)
    local c = assert(socket.connect("127.0.0.1", port))
    c:settimeout(10)
    local t0 = socket.gettime()
    c:send(head)
    if body then c:send(body) end
    local buf = c:receive("*a") or ""
    c:close()
    return tonumber(buf:match("^HTTP/1%.1 (%d+)")), socket.gettime() - t0, buf:match("\r\n\r\n(.*)$")
  end

  it("a 1 MB hostile push is refused at once (413), one at the cap is 400, and /healthz answers meanwhile", function()
    local srv = assert(nginx.start{
      workers = 1,
      http_block = ([[client_max_body_size 4m; client_body_buffer_size 4m;
        init_worker_by_lua_block {
          GW = require("wxhw.callback").mini_program{ token = %q, encoding_aes_key = %q, appid = %q,
            max_skew = false, dedup = false, handlers = {} }
          WIDE = require("wxhw.callback").mini_program{ token = %q, encoding_aes_key = %q, appid = %q,
            max_skew = false, dedup = false, handlers = {}, max_body = 2097152 }
        }]]):format(TOKEN, KEY, APPID, TOKEN, KEY, APPID),
      server_block = [[
        location = /push { content_by_lua_block { require("wxhw.callback.ngx").serve(GW) } }
        location = /wide { content_by_lua_block { require("wxhw.callback.ngx").serve(WIDE) } }
        location = /healthz { return 200 "ok"; }
      ]],
    })
    local ok, err = pcall(function()
      local hostile = ENVELOPES["XML: repeated <Encrypt><![CDATA[ openers"]
      local q = "?timestamp=1714112445&nonce=n&msg_signature=" .. ("0"):rep(40)
      local function note(what, took)
        if os.getenv("WXHW_PRINT_TIMES") then io.stderr:write(("nginx %-48s %8.2f ms\n"):format(what, took * 1e3)) end
      end
      local function post(path, body, chunked)
        local head = ("POST %s%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"):format(path, q)
        if chunked then
          return exchange(srv.port, head .. "Transfer-Encoding: chunked\r\n\r\n",
                          ("%x\r\n%s\r\n0\r\n\r\n"):format(#body, body))
        end
        return exchange(srv.port, head .. ("Content-Length: %d\r\n\r\n"):format(#body), body)
      end
      local big = hostile(linear.BIG)
      local status, took = post("/push", big)
      assert.equal(413, status)
      note("1 MB, Content-Length: 413", took)
      assert(took < 1, ("413 took %.2f s"):format(took))
      status, took = post("/push", big, true) -- no Content-Length: read, then refused by the endpoint
      assert.equal(413, status)
      note("1 MB, chunked: read, then 413", took)
      assert(took < 1, ("chunked 413 took %.2f s"):format(took))
      status, took = post("/push", hostile(65536 - 100))
      assert.equal(400, status) -- parsed (linearly): no Encrypt element
      note("64 KB at the cap: 400", took)
      assert(took < 1, ("64 KB took %.2f s"):format(took))
      -- 1 MB through the parser itself, with /healthz asked while it runs
      local c = assert(socket.connect("127.0.0.1", srv.port))
      c:send(("POST /wide%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"):format(q, #big))
      c:send(big)
      local hs, htook, hbody = exchange(srv.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      c:settimeout(10)
      local wide = c:receive("*a") or ""
      c:close()
      note("/healthz while 1 MB is parsed (max_body 2 MB)", htook)
      assert.equal(200, hs); assert.equal("ok", hbody)
      assert(htook < 1, ("/healthz waited %.2f s"):format(htook))
      assert.matches("^HTTP/1.1 400", wide)
    end)
    local log = srv:error_log()
    srv:stop()
    assert(ok, tostring(err) .. "\n" .. log)
  end)
end)

describe("the Lua HTTP server (program mode) against hostile clients", function()
  local socket = require "socket"
  local httpserver = require "wxhw.httpserver"

  -- Sends `parts` one per server step; returns the status and body.
  local function exchange(srv, parts)
    local c = assert(socket.connect("127.0.0.1", srv.port))
    c:setoption("tcp-nodelay", true)
    for _, p in ipairs(parts) do
      assert(c:send(p))
      srv:step(0)
    end
    c:settimeout(0)
    local buf, deadline = "", socket.gettime() + 5
    while socket.gettime() < deadline do
      srv:step(0.01)
      local data, err, partial = c:receive(65536)
      buf = buf .. (data or partial or "")
      if err == "closed" or buf:find("\r\n\r\n", 1, true) and #buf >= #buf:match("^.-\r\n\r\n") +
         (tonumber(buf:match("Content%-Length: (%d+)")) or 0) then break end
    end
    c:close()
    return tonumber(buf:match("^HTTP/1%.1 (%d+)")), buf:match("\r\n\r\n(.*)$")
  end

  it("refuses a declared body over max_body (64 KiB) before reading it, and a malformed length", function()
    local srv = assert(httpserver.new{ handler = function(_, _, _, _, b) return 200, {}, tostring(#b) end })
    finally(function() srv:close() end)
    assert.equal(413, (exchange(srv, { "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" })))
    for _, bad in ipairs{ "0x10", "1e3", "-1", "+5", " ", "99999999999999999999" } do
      assert.equal(400, (exchange(srv, { "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: " .. bad .. "\r\n\r\n" })), bad)
    end
    assert.equal(431, (exchange(srv, { "GET /x HTTP/1.1\r\n" .. ("X-A: b\r\n"):rep(3000) .. "\r\n" })))
  end)

  it("a body trickled in small pieces arrives whole", function()
    local srv = assert(httpserver.new{ handler = function(_, _, q, _, b) return 200, {}, #b .. " " .. tostring(q.a) end })
    finally(function() srv:close() end)
    local body = ("x"):rep(60000)
    local parts = { "POST /x?a=1 HTTP/1.1\r\nHost: x\r\nContent-Le", "ngth: 60000\r\n\r", "\n" }
    for i = 1, #body, 200 do parts[#parts + 1] = body:sub(i, i + 199) end
    local status, reply = exchange(srv, parts)
    assert.equal(200, status)
    assert.equal("60000 1", reply)
  end)
end)

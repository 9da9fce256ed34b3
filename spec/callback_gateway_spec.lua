-- Callback gateway: Mini Program pushes (message-push.html and its known
-- answers), WeCom openhw callbacks (developer.work.weixin.qq.com docs 96053,
-- 95987, 95988, 96130) and the Pay hook, called as plain functions.
local callback = require "wxhw.callback"
local msgcrypt = require "wxhw.msgcrypt"
local kv = require "wxhw.call.store"
local cjson = require "cjson"

local TOKEN, KEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"
local V_QUERY = {
  signature = "6c5c811b55cc85e0e1b54100749188c20beb3f5d", timestamp = "1714112445", nonce = "415670741",
  openid = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY", encrypt_type = "aes",
  msg_signature = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3",
}
local V_BODY = [[{"ToUserName":"gh_97417a04a28d","Encrypt":"+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="}]]

local function copy(t) local c = {} for k, v in pairs(t) do c[k] = v end return c end

-- A push as WeChat builds it (secure mode) for the message `msg`.
local function push(mc, msg, ts, nonce, style)
  ts, nonce = ts or 1714112445, nonce or "n" .. math.random(1e9)
  local body, sig = mc:push_body(type(msg) == "table" and cjson.encode(msg) or msg, style or "mp_json", ts, nonce,
                                 "gh_97417a04a28d")
  return { timestamp = tostring(ts), nonce = nonce, encrypt_type = "aes", msg_signature = sig,
           openid = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY" }, body
end

local VOIP = {
  ToUserName = "gh_12345678", FromUserName = "openid-1", CreateTime = 1714112440, MsgType = "event",
  Event = "iot_voip_notify", Action = "join_voip_room", Payload = "hello",
  RoomId = "wxf830863afde621ebWmpfVoip112343434123434", SessionKey = "COrwxeDm", ServerToken = "xyrOs/pw==",
  ModelId = "fJ4exxxxxxx", Sn = "1234",
}

describe("callback.mini_program", function()
  local mc, calls, events, gw

  local function new_gw(extra)
    calls, events = {}, {}
    local o = {
      token = TOKEN, encoding_aes_key = KEY, appid = APPID, clock = function() return 1714112445 end,
      handlers = {
        debug_demo = function(msg) calls[#calls + 1] = msg end,
        iot_voip_notify = function(msg, ctx)
          calls[#calls + 1] = msg
          assert.equal("json", ctx.format)
          return { errcode = 0, errmsg = "ok" }
        end,
      },
      on_event = function(info) events[#events + 1] = info end,
    }
    for k, v in pairs(extra or {}) do o[k] = v end
    return callback.mini_program(o)
  end

  before_each(function()
    mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
    gw = new_gw()
  end)

  it("answers URL verification with echostr verbatim (message-push.html known answer)", function()
    local g = new_gw{ clock = function() return 1714036504 end }
    local st, h, body = g("GET", { signature = "f464b24fc39322e44b38aa78f5edd27bd1441696", timestamp = "1714036504",
                                   nonce = "1514711492", echostr = "4375120948345356249" }, {}, "")
    assert.equal(200, st)
    assert.equal("4375120948345356249", body)
    assert.matches("text/plain", h["Content-Type"])
    st = g("GET", { signature = "f464b24fc39322e44b38aa78f5edd27bd1441697", timestamp = "1714036504",
                    nonce = "1514711492", echostr = "4375120948345356249" }, {}, "")
    assert.equal(403, st)
  end)

  it("decrypts the published secure push and dispatches by Event", function()
    local st, _, body = gw("POST", V_QUERY, { ["Content-Type"] = "application/json" }, V_BODY)
    assert.equal(200, st)
    assert.equal("success", body)
    assert.equal(1, #calls)
    assert.equal("hello world", calls[1].debug_str)
    assert.equal("debug_demo", events[1].event)
    assert.is_true(events[1].dispatched)
  end)

  it("rejects a wrong msg_signature with 403 and dispatches nothing", function()
    local q = copy(V_QUERY)
    q.msg_signature = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b4"
    assert.equal(403, (gw("POST", q, {}, V_BODY)))
    -- the plain `signature` being right does not help in secure mode
    q.msg_signature = nil
    assert.equal(400, (gw("POST", q, {}, V_BODY)))
    assert.equal(0, #calls)
  end)

  it("rejects tampered ciphertext (403 unsigned, 400 when re-signed) and dispatches nothing", function()
    local body = V_BODY:gsub('"Encrypt":"%+qdx', '"Encrypt":"+qdy')
    assert.equal(403, (gw("POST", V_QUERY, {}, body)))
    -- re-signed with the token (an attacker cannot, but it isolates the decrypt checks)
    local enc = cjson.decode(body).Encrypt
    local q = copy(V_QUERY)
    q.msg_signature = mc:signature(q.timestamp, q.nonce, enc)
    local st, _, msg = gw("POST", q, {}, body)
    assert.equal(400, st)
    assert.truthy(msg ~= "success")
    -- a truncated (not multiple of 32) ciphertext
    enc = cjson.decode(V_BODY).Encrypt:sub(1, 40)
    q.msg_signature = mc:signature(q.timestamp, q.nonce, enc)
    assert.equal(400, (gw("POST", q, {}, cjson.encode({ ToUserName = "gh", Encrypt = enc }))))
    assert.equal(0, #calls)
  end)

  it("rejects stale and missing timestamps with 403", function()
    local g = new_gw{ clock = function() return 1714112445 + 301 end }
    assert.equal(403, (g("POST", V_QUERY, {}, V_BODY)))
    g = new_gw{ clock = function() return 1714112445 - 301 end }
    assert.equal(403, (g("POST", V_QUERY, {}, V_BODY)))
    local q = copy(V_QUERY); q.timestamp = nil
    assert.equal(403, (gw("POST", q, {}, V_BODY)))
    assert.equal(0, #calls)
    -- within the window it passes
    g = new_gw{ clock = function() return 1714112445 + 299 end }
    assert.equal(200, (g("POST", V_QUERY, {}, V_BODY)))
  end)

  it("rejects a push encrypted for another appid with 403", function()
    local other = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = "wx0000000000000000" })
    local q, body = push(other, VOIP)
    assert.equal(403, (gw("POST", q, {}, body)))
    assert.equal(0, #calls)
  end)

  it("rejects malformed payloads with 400 and unknown events when asked, nothing dispatched", function()
    local q, body = push(mc, { MsgType = "event", Event = "no_such_event", FromUserName = "x", CreateTime = 1 })
    local st, _, msg = new_gw{ unknown = "reject" }("POST", q, {}, body)
    assert.equal(400, st)
    assert.matches("no_such_event", msg)
    assert.is_true(events[#events].unknown)
    assert.equal("unknown_event", events[#events].reason)
    q, body = push(mc, "this is not json")
    assert.equal(400, (gw("POST", q, {}, body)))
    q, body = push(mc, { FromUserName = "x" }) -- no MsgType
    assert.equal(400, (gw("POST", q, {}, body)))
    assert.equal(400, (gw("POST", V_QUERY, {}, "{not json")))
    assert.equal(400, (gw("POST", V_QUERY, {}, '{"ToUserName":"x"}')))
    assert.equal(400, (gw("POST", V_QUERY, {}, "")))
    assert.equal(405, (gw("PUT", V_QUERY, {}, V_BODY)))
    assert.equal(0, #calls)
    -- "ack" (the default: a 400 only makes WeChat retransmit it 3 times)
    -- acknowledges unknown events without dispatching
    local g = new_gw()
    q, body = push(mc, { MsgType = "event", Event = "no_such_event", FromUserName = "x", CreateTime = 1 })
    local st2, _, b2 = g("POST", q, {}, body)
    assert.equal(200, st2); assert.equal("success", b2)
    assert.equal(0, #calls)
  end)

  it("answers iot_voip_notify with the plaintext JSON {errcode, errmsg} (cloud-server-sdk), never encrypted", function()
    local q, body = push(mc, VOIP)
    local st, h, reply = gw("POST", q, {}, body)
    assert.equal(200, st)
    assert.equal("application/json", h["Content-Type"])
    assert.equal('{"errcode":0,"errmsg":"ok"}', reply)
    assert.equal("wxf830863afde621ebWmpfVoip112343434123434", calls[1].RoomId)
    -- a refusal (non-zero cancels the call) and a bare acknowledgement, also plaintext
    local g = new_gw{ handlers = { iot_voip_notify = function() return { errcode = 1, errmsg = "device busy" } end } }
    q, body = push(mc, VOIP)
    st, h, reply = g("POST", q, {}, body)
    assert.equal(200, st); assert.equal('{"errcode":1,"errmsg":"device busy"}', reply)
    g = new_gw{ handlers = { iot_voip_notify = function() end } }
    q, body = push(mc, VOIP)
    st, h, reply = g("POST", q, {}, body)
    assert.equal(200, st); assert.same({ errcode = 0, errmsg = "ok" }, cjson.decode(reply))
    -- an XML push is answered the same way
    g = new_gw{ handlers = { iot_voip_notify = function() return { errcode = 0, errmsg = "ok" } end } }
    q, body = push(mc, callback.encode_xml(VOIP), nil, nil, "xml")
    st, h, reply = g("POST", q, {}, body)
    assert.equal(200, st); assert.equal("application/json", h["Content-Type"])
    assert.equal('{"errcode":0,"errmsg":"ok"}', reply)
    -- a reply without an integer errcode is the handler's bug, not an answer
    g = new_gw{ handlers = { iot_voip_notify = function() return { ok = true } end } }
    q, body = push(mc, VOIP)
    assert.equal(500, (g("POST", q, {}, body)))
  end)

  it("answers XML pushes with an encrypted XML reply", function()
    local g = new_gw{ handlers = { debug_demo = function(msg) calls[#calls + 1] = msg; return { demo_resp = "ok" } end } }
    local ev = copy(VOIP); ev.Event = "debug_demo"
    local xml = callback.encode_xml(ev)
    local q, body = push(mc, xml, nil, nil, "xml")
    local st, h, reply = g("POST", q, {}, body)
    assert.equal(200, st)
    assert.equal("application/xml", h["Content-Type"])
    local f = msgcrypt.xml_field
    local plain = assert(mc:decrypt(f(reply, "MsgSignature"), f(reply, "TimeStamp"), f(reply, "Nonce"),
                                    f(reply, "Encrypt")))
    assert.equal("ok", callback.parse_xml(plain).demo_resp)
    assert.equal("1234", calls[1].Sn)
    -- and JSON pushes with an encrypted mp_json reply WeChat can verify
    q, body = push(mc, ev)
    st, h, reply = g("POST", q, {}, body)
    assert.equal(200, st); assert.equal("application/json", h["Content-Type"])
    local r = cjson.decode(reply)
    local ts = ("%d"):format(r.TimeStamp)
    assert.equal(mc:signature(ts, r.Nonce, r.Encrypt), r.MsgSignature)
    assert.same({ demo_resp = "ok" }, cjson.decode((assert(mc:decrypt(r.MsgSignature, ts, r.Nonce, r.Encrypt)))))
  end)

  it("answers a retransmitted push identically without re-running the handler", function()
    local q, body = push(mc, VOIP, 1714112445, "111")
    local st1, _, r1 = gw("POST", q, {}, body)
    local st2, _, r2 = gw("POST", q, {}, body)
    -- WeChat's retransmission is re-encrypted with a new nonce and timestamp
    local q3, body3 = push(mc, VOIP, 1714112447, "222")
    assert.are_not.equal(body, body3)
    local st3, _, r3 = gw("POST", q3, {}, body3)
    assert.equal(200, st1); assert.equal(200, st2); assert.equal(200, st3)
    assert.equal(r1, r2); assert.equal(r1, r3)
    assert.equal(1, #calls)
    assert.is_true(events[2].duplicate); assert.is_true(events[3].duplicate)
    -- a different call is a different push
    local other = copy(VOIP); other.RoomId = "room-2"
    local q4, body4 = push(mc, other)
    gw("POST", q4, {}, body4)
    assert.equal(2, #calls)
  end)

  it("keeps 64-bit MsgIds exact: pushes a few ids apart are distinct, a copy of one is not", function()
    -- cjson alone reads both ids as one double (14 significant digits in a key)
    local ids = { "23637352235060880", "23637352235060881", "23637352235061879", "123456789012345",
                  "123456789012346" }
    for _, id in ipairs(ids) do
      local q, body = push(mc, '{"MsgType":"event","Event":"debug_demo","MsgId":' .. id .. '}')
      assert.equal(200, (gw("POST", q, {}, body)))
    end
    assert.equal(#ids, #calls)
    assert.equal("23637352235060881", calls[2].MsgId) -- beyond 2^53: the exact digits as a string
    assert.equal(123456789012346, calls[5].MsgId)
    local q, body = push(mc, '{"MsgType":"event","Event":"debug_demo","MsgId":23637352235060881}')
    gw("POST", q, {}, body)
    assert.equal(#ids, #calls)
    assert.is_true(events[#events].duplicate)
  end)

  it("does not cache failures: the retransmission runs the handler again", function()
    local n = 0
    local g = new_gw{ handlers = { iot_voip_notify = function()
      n = n + 1
      if n == 1 then error("database down") end
      if n == 2 then return nil, "still down" end
      return { errcode = 0, errmsg = "ok" }
    end } }
    local q, body = push(mc, VOIP)
    local st, _, b = g("POST", q, {}, body)
    assert.equal(500, st)
    assert.falsy(b:find("database", 1, true)) -- no internals leak
    assert.equal(500, (g("POST", q, {}, body)))
    assert.equal(200, (g("POST", q, {}, body)))
    assert.equal(200, (g("POST", q, {}, body)))
    assert.equal(3, n)
  end)

  -- The endpoint runs without a pcall of its own (only the handler is
  -- called under one), so a reply it cannot use must fail the push as a
  -- return value, never as an error: 500, the reason in on_event's info,
  -- nothing cached (the retransmission runs the handler again).
  it("fails a push whose handler returns what cannot be sent, and does not cache it", function()
    local cases = {
      { "debug_demo", function() return { f = print } end, "json", "cannot be encoded" },
      { "debug_demo", function() return { a = { b = {} }, f = print } end, "json", "cannot be encoded" },
      { "debug_demo", function() return { [{}] = 1 } end, "xml", "cannot be encoded" },
      { "debug_demo", function() return print end, "json", "returned a function" },
      { "iot_voip_notify", function() return { errcode = "0" } end, "json", "must return { errcode = integer" },
      { "debug_demo", function() error({ code = 7 }) end, "json", "table:" },
      { "debug_demo", function() error(setmetatable({}, { __tostring = function() error("x") end })) end, "json",
        "a table error value" },
      { "iot_voip_notify", function() return { errcode = 1e300 } end, "json", "must return { errcode = integer" },
      { "iot_voip_notify", function() return { errcode = 2 ^ 63 } end, "xml", "must return { errcode = integer" },
      { "iot_voip_notify", function() return { errcode = 0, errmsg = {} } end, "json", "errmsg = string" },
      { "iot_voip_notify", function()
        return setmetatable({}, { __index = function() error("no") end })
      end, "json", "must return { errcode = integer" },
    }
    for _, case in ipairs(cases) do
      local event, bad, fmt, why = case[1], case[2], case[3], case[4]
      local n = 0
      local g = new_gw{ handlers = { [event] = function()
        n = n + 1
        if n == 1 then return bad() end
      end } }
      local msg = copy(VOIP)
      msg.Event = event
      local q, body
      if fmt == "xml" then q, body = push(mc, callback.encode_xml(msg), nil, nil, "xml")
      else q, body = push(mc, msg) end
      local st, _, b = g("POST", q, {}, body)
      assert.equal(500, st, why)
      assert.equal("handler failed", b)
      assert.truthy(events[#events].error and events[#events].error:find(why, 1, true), why)
      assert.equal(200, (g("POST", q, {}, body)), why)
      assert.equal(2, n, why)
    end
  end)

  it("answers a VoIP push in XML from the table alone, and a null MsgId names no push", function()
    local n = 0
    local g = new_gw{ handlers = {
      iot_voip_notify = function() return { errcode = 0, errmsg = "ok", [true] = "not for XML" } end,
      debug_demo = function() n = n + 1 end } }
    local q, body = push(mc, callback.encode_xml(VOIP), nil, nil, "xml")
    local st, _, b = g("POST", q, {}, body)
    assert.equal(200, st)
    assert.same({ errcode = 0, errmsg = "ok" }, cjson.decode(b))
    -- two different pushes with "MsgId": null are both handled
    for i = 1, 2 do
      q, body = push(mc, '{"MsgType":"event","Event":"debug_demo","MsgId":null,"N":' .. i .. '}')
      assert.equal(200, (g("POST", q, {}, body)))
    end
    assert.equal(2, n)
  end)

  it("a raising on_event hook never fails the push; a trusted one is called directly", function()
    local g = new_gw{ on_event = function() error("hook broke") end }
    local q, body = push(mc, VOIP)
    assert.equal(200, (g("POST", q, {}, body)))
    -- trusted: no pcall between the endpoint and the hook (its error is not swallowed)
    local seen = 0
    local trusted = callback.trusted_hook(function(info) seen = seen + 1; if info.event == "boom" then error("raised") end end)
    g = new_gw{ on_event = trusted, handlers = { boom = function() end } }
    q, body = push(mc, VOIP)
    assert.equal(200, (g("POST", q, {}, body)))
    assert.equal(1, seen)
    local m = copy(VOIP); m.Event = "boom"
    q, body = push(mc, m)
    assert.has_error(function() g("POST", q, {}, body) end, "raised")
    -- a trusted hook's info table is used again: nothing of one push shows in the next
    local seen_info = {}
    g = new_gw{ on_event = callback.trusted_hook(function(info)
      local c = {}
      for k, v in pairs(info) do c[k] = v end
      seen_info[#seen_info + 1] = c
    end) }
    q, body = push(mc, VOIP)
    g("POST", q, {}, body)
    g("POST", q, {}, body) -- a duplicate
    local q2, body2 = push(mc, { MsgType = "event", Event = "nobody_wants_this", CreateTime = 1714112440 })
    g("POST", q2, {}, body2)
    assert.is_true(seen_info[2].duplicate)
    assert.is_nil(seen_info[3].duplicate)
    assert.is_nil(seen_info[3].dispatched)
    assert.is_nil(seen_info[3].handler_ms)
    assert.is_true(seen_info[3].unknown)
    assert.equal("mp", seen_info[3].kind)
  end)

  it("answers 503 for a duplicate while the first copy is still running", function()
    local store = kv.memory()
    local g = new_gw{ dedup = { store = store } }
    local q, body = push(mc, VOIP)
    local key = "dup:" .. require("wxhw.callback.dedup").key("mp", nil, cjson.encode(VOIP))
    -- the first copy claimed the key in another worker and is still running
    local plain = assert(mc:open(q, body))
    key = "dup:" .. require("wxhw.callback.dedup").key("mp", nil, plain)
    assert.is_true(store:add(key, "P", 60))
    assert.equal(503, (g("POST", q, {}, body)))
    assert.equal(0, #calls)
  end)

  it("shares de-duplication across gateways through the store", function()
    local store = kv.memory()
    local g1 = new_gw{ dedup = { store = store } }
    local g2 = new_gw{ dedup = { store = store } }
    local q, body = push(mc, VOIP)
    local _, _, r1 = g1("POST", q, {}, body)
    local _, _, r2 = g2("POST", q, {}, body)
    assert.equal(r1, r2)
    assert.equal(1, #calls) -- both gateways' handlers append here
    local dispatched = 0
    for _, e in ipairs(events) do if e.dispatched then dispatched = dispatched + 1 end end
    assert.equal(1, dispatched)
  end)

  it("refuses plaintext pushes unless allowed, and never for iot_voip_notify", function()
    local q = { signature = "899cf89e464efb63f54ddac96b0a0a235f53aa78", timestamp = "1714037059", nonce = "486452656" }
    local plain_msg = cjson.encode({ MsgType = "event", Event = "debug_demo", debug_str = "x", CreateTime = 1 })
    local g = new_gw{ clock = function() return 1714037059 end }
    assert.equal(403, (g("POST", q, {}, plain_msg)))
    g = new_gw{ clock = function() return 1714037059 end, allow_plaintext = true }
    assert.equal(200, (g("POST", q, {}, plain_msg)))
    assert.equal(1, #calls)
    assert.equal(403, (g("POST", q, {}, cjson.encode(VOIP))))
    local bad = copy(q); bad.signature = "0" .. q.signature:sub(2)
    assert.equal(403, (g("POST", bad, {}, plain_msg)))
    assert.equal(1, #calls)
  end)

  it("raises on misuse", function()
    assert.has_error(function() callback.mini_program{ token = TOKEN, encoding_aes_key = "short", appid = APPID } end)
    assert.has_error(function() callback.mini_program("x") end)
  end)
end)

describe("callback.wecom (openhw)", function()
  local CORP = "wwcorp000000000001"
  local mc, seen, events, gw

  local function wpush(msg, ts, nonce)
    ts, nonce = ts or 1714112445, nonce or tostring(math.random(1e9))
    local body, sig = mc:push_body(cjson.encode(msg), "wecom_json", ts, nonce)
    return { msg_signature = sig, timestamp = tostring(ts), nonce = nonce }, body
  end

  before_each(function()
    mc = assert(msgcrypt.new{ token = "wecomtoken", encoding_aes_key = KEY, receive_id = CORP })
    seen, events = {}, {}
    gw = callback.wecom{
      token = "wecomtoken", encoding_aes_key = KEY, receive_id = CORP, clock = function() return 1714112445 end,
      on_event = function(i) events[#events + 1] = i end,
      deadlines = { unbind = 0.01 },
      handlers = {
        model_ticket = function(msg) seen[#seen + 1] = msg.event.model_ticket end,
        bind = function(msg)
          seen[#seen + 1] = msg.base_info.device_sn
          if msg.event.verif_code ~= "1234" then return { errcode = 4, errmsg = "verification code wrong" } end
        end,
        unbind = function(msg) require("socket").sleep(0.03); seen[#seen + 1] = "unbind " .. msg.base_info.device_sn end,
      },
    }
  end)

  it("verifies the URL by decrypting echostr", function()
    local enc, sig = mc:encrypt("echo-8312", 1714112445, "77")
    local st, _, body = gw("GET", { msg_signature = sig, timestamp = "1714112445", nonce = "77", echostr = enc }, {}, "")
    assert.equal(200, st); assert.equal("echo-8312", body)
    assert.equal(403, (gw("GET", { msg_signature = sig, timestamp = "1714112445", nonce = "78", echostr = enc }, {}, "")))
  end)

  it("dispatches model_ticket and de-duplicates by req_id", function()
    local m = { msg_type = "event", base_info = { req_id = "r-1", createtime = 1, model_id = "m", service_corpid = CORP },
                event = { event_type = "model_ticket", model_ticket = "TICKET-1" } }
    local q, body = wpush(m)
    local st, _, b = gw("POST", q, {}, body)
    assert.equal(200, st); assert.equal("success", b)
    q, body = wpush(m, 1714112446) -- re-sent later, same req_id
    assert.equal(200, (gw("POST", q, {}, body)))
    assert.same({ "TICKET-1" }, seen)
  end)

  it("answers a rejected bind with an encrypted {errcode} reply and an accepted one with success", function()
    local base = { req_id = "r-2", device_sn = "SN42", createtime = 1, model_id = "m", auth_corpid = "c", service_corpid = CORP }
    local q, body = wpush{ msg_type = "event", base_info = base, event = { event_type = "bind", auth_code = "a", verif_code = "0000" } }
    local st, h, reply = gw("POST", q, {}, body)
    assert.equal(200, st); assert.equal("application/json", h["Content-Type"])
    local r = cjson.decode(reply)
    assert.is_string(r.timestamp) -- a JSON string, as both official WeCom SDKs write it
    local plain = assert(mc:decrypt(r.msgsignature, r.timestamp, r.nonce, r.encrypt))
    assert.same({ errcode = 4, errmsg = "verification code wrong" }, cjson.decode(plain))
    base.req_id = "r-3"
    q, body = wpush{ msg_type = "event", base_info = base, event = { event_type = "bind", auth_code = "a", verif_code = "1234" } }
    local st2, _, b2 = gw("POST", q, {}, body)
    assert.equal(200, st2); assert.equal("success", b2)
    assert.same({ "SN42", "SN42" }, seen)
  end)

  it("reports handlers that miss the event's deadline", function()
    local q, body = wpush{ msg_type = "event", base_info = { req_id = "r-4", device_sn = "S1" }, event = { event_type = "unbind" } }
    assert.equal(200, (gw("POST", q, {}, body)))
    assert.is_true(events[#events].late)
    assert.equal("unbind", events[#events].event)
  end)

  it("dispatches device commands by command.command_type, with their 1 s deadline", function()
    local got
    local g = callback.wecom{ token = "wecomtoken", encoding_aes_key = KEY, receive_id = CORP,
      clock = function() return 1714112445 end, on_event = function(i) events[#events + 1] = i end,
      deadlines = { remote_open_door = 0.01 },
      handlers = { remote_open_door = function(msg) got = msg.command; require("socket").sleep(0.03) end } }
    local q, body = wpush{ msg_type = "command", base_info = { req_id = "r-6", device_sn = "S1" },
      command = { command_type = "remote_open_door", open_userid = "wo1", oper_id = "op-1" } }
    local st, _, b = g("POST", q, {}, body)
    assert.equal(200, st); assert.equal("success", b)
    assert.same({ command_type = "remote_open_door", open_userid = "wo1", oper_id = "op-1" }, got)
    assert.equal("remote_open_door", events[#events].event)
    assert.is_true(events[#events].late)
    -- doc 96130 and every command page: 1000 ms
    for _, name in ipairs{ "verify_device", "fetch_device_status", "update_firmware", "enter_page", "exit_page" } do
      assert.equal(1.0, callback.wecom_deadlines[name])
    end
  end)

  it("rejects bad signatures, unknown events and missing parameters", function()
    local q, body = wpush{ msg_type = "event", base_info = { req_id = "r-5" }, event = { event_type = "firmware_upgrade" } }
    assert.equal(200, (gw("POST", q, {}, body))) -- unknown: acknowledged, not dispatched
    q.msg_signature = ("0"):rep(40)
    assert.equal(403, (gw("POST", q, {}, body)))
    assert.equal(400, (gw("POST", { timestamp = "1714112445" }, {}, body)))
    assert.equal(0, #seen)
  end)
end)

describe("callback.pay", function()
  -- The Pay client is built by another module (wxhw.pay); this checks the
  -- adapter against its documented contract pay:notification(headers, body).
  local function client(verdicts)
    return { notification = function(_, headers, body)
      local v = verdicts[body]
      if v == "bad-signature" then
        return nil, require("wxhw.errors").new("signature", "signature mismatch", { reason = "bad_signature" })
      end
      assert.equal("sig", callback.header(headers, "Wechatpay-Signature"))
      return v
    end }
  end

  it("maps verification failures to 401 and dispatches each notification id once", function()
    local handled = {}
    local gw = callback.pay{ pay = client{ a = { id = "EV-1", event_type = "TRANSACTION.SUCCESS" }, b = "bad-signature" },
                             handler = function(n) handled[#handled + 1] = n.id end }
    local h = { ["wechatpay-signature"] = "sig" }
    assert.equal(204, (gw("POST", {}, h, "a")))
    assert.equal(204, (gw("POST", {}, h, "a")))
    local st, _, body = gw("POST", {}, h, "b")
    assert.equal(401, st)
    assert.equal("FAIL", cjson.decode(body).code)
    assert.equal(405, (gw("GET", {}, h, "a")))
    assert.same({ "EV-1" }, handled)
  end)
end)

describe("callback helpers", function()
  it("parses queries and flat XML", function()
    assert.same({ a = "1 2", b = "/x", c = "" }, callback.parse_query("a=1+2&b=%2Fx&c"))
    local t = callback.parse_xml("<xml><A><![CDATA[x<y]]></A><B>5</B><C>a&amp;b</C></xml>")
    assert.same({ A = "x<y", B = "5", C = "a&b" }, t)
    assert.is_nil(callback.parse_xml("<xml><A>1</xml>"))
    assert.is_nil(callback.parse_xml("nope"))
    local r = callback.router{ ["/a"] = function() return 201, {}, "a" end }
    assert.equal(201, (r("GET", "/a", {}, {}, "")))
    assert.equal(404, (r("GET", "/b", {}, {}, "")))
  end)
end)

describe("callback.pay with wxhw.pay", function()
  local pay_mod = require "wxhw.pay"
  local keys = require "support.pay_keys"
  local crypto = require "wxhw.crypto"
  local k, pay
  setup(function()
    k = keys.make()
    pay = assert(pay_mod.new{ mchid = keys.MCHID, serial_no = keys.SERIAL, private_key = k.merchant_pem,
      apiv3_key = keys.APIV3, platform_public_key = k.pubkey_pem, platform_public_key_id = keys.PUB_KEY_ID })
  end)
  teardown(function() if k then k.cleanup() end end)

  local function notification(id, plain)
    local nonce = crypto.nonce(12)
    local ct = crypto.base64_encode(crypto.aes_gcm_encrypt(keys.APIV3, nonce, "transaction", plain))
    local raw = cjson.encode({ id = id, event_type = "TRANSACTION.SUCCESS", resource_type = "encrypt-resource",
      resource = { algorithm = "AEAD_AES_256_GCM", ciphertext = ct, associated_data = "transaction", nonce = nonce,
                   original_type = "transaction" } })
    return raw, keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, raw, os.time())
  end

  it("verifies, decrypts and dispatches once; retries and replays get the first answer", function()
    local got = {}
    local gw = callback.pay{ pay = pay, handler = function(ev) got[#got + 1] = ev.data.out_trade_no end }
    local raw, h = notification("EV-1", '{"out_trade_no":"T1"}')
    assert.equal(204, (gw("POST", {}, h, raw)))
    assert.equal(204, (gw("POST", {}, h, raw)))                 -- the same signed copy (replay)
    local raw2, h2 = notification("EV-1", '{"out_trade_no":"T1"}') -- a re-signed retry
    assert.equal(204, (gw("POST", {}, h2, raw2)))
    assert.same({ "T1" }, got)
    local raw3, h3 = notification("EV-2", '{"out_trade_no":"T2"}')
    h3["Wechatpay-Signature"] = crypto.base64_encode(("x"):rep(256))
    local st, _, body = gw("POST", {}, h3, raw3)
    assert.equal(401, st)
    assert.equal("FAIL", cjson.decode(body).code)
    h3 = keys.signed_headers(k.wxpub, keys.PUB_KEY_ID, raw3, os.time() - 400)
    assert.equal(401, (gw("POST", {}, h3, raw3)))
    assert.same({ "T1" }, got)
  end)
end)

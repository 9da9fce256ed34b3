-- Callbacks from the emulator to a scripted vendor endpoint (a subprocess):
-- Mini Program secure-mode push (VoIP), WeCom openhw events, Pay notifications.
local emulator = require "support.emulator"
local msgcrypt = require "wxhw.msgcrypt"
local crypto = require "wxhw.crypto"
local cjson = require "cjson"
local socket = require "socket"

local function query(target)
  local q = {}
  for k, v in (target:match("%?(.*)$") or ""):gmatch("([^&=]+)=([^&]*)") do
    q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return q
end

local function wait_for(fn, seconds)
  local deadline = socket.gettime() + (seconds or 5)
  while socket.gettime() < deadline do
    local v = fn()
    if v then return v end
    socket.sleep(0.02)
  end
end

describe("emulator callbacks", function()
  local e, v, mp, hw
  local OK = '{"errcode":0,"errmsg":"ok"}'
  setup(function()
    e = emulator.start{ seed = 9 }
    v = emulator.vendor{}
    mp, hw = e.credentials.mp, e.credentials.openhw
  end)
  teardown(function()
    if e then e.stop() end
    if v then v.stop() end
  end)
  before_each(function()
    e.control("/__emulator/reset", {})
    v.clear()
    e.control("/__emulator/callbacks", { mp_url = v.url .. "/mp", openhw_url = v.url .. "/hw",
      pay_url = v.url .. "/pay", timeout_ms = 400 })
  end)

  local function mp_crypt()
    return assert(msgcrypt.new{ token = mp.msg_token, encoding_aes_key = mp.encoding_aes_key, receive_id = mp.appid })
  end
  local function open_mp(req)
    local q = query(req.target)
    assert.equal("aes", q.encrypt_type)
    assert.is_true(mp_crypt():verify_url(q.signature, q.timestamp, q.nonce))
    return cjson.decode((assert(mp_crypt():open(q, req.body))))
  end

  describe("Mini Program VoIP push", function()
    it("delivers join_voip_room in secure mode and rings on errcode 0", function()
      v.set_rules{ ["/mp"] = { { body = OK } } }
      local r = e.control("/__emulator/callbacks/mp/voip", { openid = "oUser", sn = "door7", payload = "chan-1" })
      assert.equal("ringing", r.outcome)
      assert.equal(1, r.attempts)
      local reqs = v.requests("/mp")
      assert.equal(1, #reqs)
      local ev = open_mp((reqs[1]))
      assert.equal("iot_voip_notify", ev.Event)
      assert.equal("join_voip_room", ev.Action)
      assert.equal(r.roomid, ev.RoomId)
      assert.equal(r.server_token, ev.ServerToken)
      assert.equal("chan-1", ev.Payload)
      assert.equal("door7", ev.Sn)
      assert.equal("oUser", query(reqs[1].target).openid)
      assert.equal(mp.original_id, cjson.decode(reqs[1].body).ToUserName)
    end)

    it("cancels on a non-zero errcode without retransmitting", function()
      v.set_rules{ ["/mp"] = { { body = '{"errcode":1,"errmsg":"busy"}' } } }
      local r = e.control("/__emulator/callbacks/mp/voip", {})
      assert.equal("cancelled", r.outcome)
      assert.equal(1, #v.requests("/mp"))
    end)

    it("retransmits when the answer is late, up to 3 attempts", function()
      v.set_rules{ ["/mp"] = { { delay = 0.6, body = OK }, { body = OK } } }
      local r = e.control("/__emulator/callbacks/mp/voip", {})
      assert.equal("ringing", r.outcome)
      assert.equal(2, r.attempts)
      v.set_rules{ ["/mp"] = { { close = true } } }
      r = e.control("/__emulator/callbacks/mp/voip", {})
      assert.equal("failed", r.outcome)
      assert.equal(3, r.attempts)
    end)

    it("takes an encrypted reply (no top-level errcode) as no answer and retransmits (cloud-server-sdk)", function()
      local body = mp_crypt():reply(OK, "mp_json", os.time(), "12345")
      v.set_rules{ ["/mp"] = { { body = body }, { body = "success" }, { body = OK } } }
      local r = e.control("/__emulator/callbacks/mp/voip", {})
      assert.equal("ringing", r.outcome)
      assert.equal(3, r.attempts)
      v.set_rules{ ["/mp"] = { { body = body } } }
      r = e.control("/__emulator/callbacks/mp/voip", {})
      assert.equal("failed", r.outcome)
      assert.equal(3, r.attempts)
      local log = e.control("/__emulator/callbacks", nil, "GET").log
      assert.equal("encrypted reply (must be plaintext)", log[#log].error)
    end)

    it("pushes the event for a server-initiated call", function()
      v.set_rules{ ["/mp"] = { { body = OK } } }
      local tok = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret).access_token
      e.control("/__emulator/mp/voip_authorize", { openid = "oCallee", sn = "cam1", model_id = mp.model_id })
      local r = e.json("POST", "/wxa/business/iot/voip/call?access_token=" .. tok,
        { model_id = mp.model_id, sn = "cam1", openid = "oCallee", room_type = "voice", payload = "x" })
      assert.equal(0, r.errcode)
      local reqs = wait_for(function() local l = v.requests("/mp"); return #l > 0 and l end)
      assert.equal(r.roomid, open_mp(reqs[1]).RoomId)
    end)
  end)

  it("verifies push URLs as the admin console does", function()
    -- the vendor script cannot compute the answer, so it replays what it is told;
    -- first a wrong answer, then the right one read back from its request log
    v.set_rules{ ["/mp"] = { { body = "nope" } }, ["/hw"] = { { body = "nope" } } }
    local r = e.control("/__emulator/callbacks/mp/verify_url", {})
    assert.is_false(r.ok)
    local req = v.requests("/mp")[1]
    local q = query(req.target)
    assert.is_true(mp_crypt():verify_url(q.signature, q.timestamp, q.nonce))
    assert.is_string(q.echostr)
    r = e.control("/__emulator/callbacks/openhw/verify_url", {})
    assert.is_false(r.ok)
    local hq = query(v.requests("/hw")[1].target)
    local hc = assert(msgcrypt.new{ token = hw.callback_token, encoding_aes_key = hw.encoding_aes_key,
      receive_id = hw.service_corpid })
    local plain = assert(hc:decrypt(hq.msg_signature, hq.timestamp, hq.nonce, hq.echostr))
    assert.equal(20, #plain)
    v.set_rules{ ["/mp"] = { { echo_query = "echostr" } }, ["/hw"] = { { wecom_echo = {
      token = hw.callback_token, encoding_aes_key = hw.encoding_aes_key, receive_id = hw.service_corpid } } } }
    assert.is_true(e.control("/__emulator/callbacks/mp/verify_url", {}).ok)
    assert.is_true(e.control("/__emulator/callbacks/openhw/verify_url", {}).ok)
  end)

  describe("WeCom openhw events", function()
    local function hw_crypt()
      return assert(msgcrypt.new{ token = hw.callback_token, encoding_aes_key = hw.encoding_aes_key,
        receive_id = hw.service_corpid })
    end
    local function open_hw(req)
      return cjson.decode((assert(hw_crypt():open(query(req.target), req.body))))
    end
    local function register(sn)
      local t = e.control("/__emulator/openhw/model_ticket").model_ticket
      local mt = e.json("POST", "/cgi-bin/openhw/get_model_token",
        { model_id = hw.model_id, model_secret = hw.model_secret, model_ticket = t }).model_access_token
      e.json("POST", "/cgi-bin/openhw/model/register_sn?model_access_token=" .. mt, { device_sn = sn })
      return mt
    end

    it("sends bind with a one-time auth_code and binds on success", function()
      v.set_rules{ ["/hw"] = { { body = "success" } } }
      register("BIND1")
      local b = e.control("/__emulator/openhw/bind", { device_sn = "BIND1", verif_code = "1234" })
      assert.is_true(b.ok)
      local reqs = v.requests("/hw")
      local ev = open_hw(reqs[#reqs])
      assert.equal("event", ev.msg_type)
      assert.equal("bind", ev.event.event_type)
      assert.equal(b.auth_code, ev.event.auth_code)
      assert.equal("1234", ev.event.verif_code)
      assert.equal("BIND1", ev.base_info.device_sn)
      assert.equal(hw.service_corpid, ev.base_info.service_corpid)
    end)

    it("fails the bind when the vendor refuses or is later than 3000 ms", function()
      local refuse = hw_crypt():reply('{"errcode":2,"errmsg":"already bound"}', "wecom_json", os.time(), "99")
      v.set_rules{ ["/hw"] = { { body = refuse } } }
      register("BIND2")
      local status, body = e.request("POST", "/__emulator/openhw/bind", cjson.encode{ device_sn = "BIND2" })
      assert.equal(409, status)
      assert.truthy(body:find("errcode 2", 1, true))
      v.set_rules{ ["/hw"] = { { delay = 3.2, body = "success" } } }
      status = e.request("POST", "/__emulator/openhw/bind", cjson.encode{ device_sn = "BIND2" })
      assert.equal(409, status)
      -- the reply's timestamp is a JSON string, as both official WeCom SDKs write it: an
      -- envelope with a numeric one is not a WeCom reply (it would accept the bind here)
      local accept = cjson.decode((hw_crypt():reply('{"errcode":0,"errmsg":"ok"}', "wecom_json", os.time(), "98")))
      assert.is_string(accept.timestamp)
      v.set_rules{ ["/hw"] = { { body = cjson.encode(accept) } } }
      status = e.request("POST", "/__emulator/openhw/bind", cjson.encode{ device_sn = "BIND2" })
      assert.equal(200, status)
      accept.timestamp = tonumber(accept.timestamp)
      v.set_rules{ ["/hw"] = { { body = cjson.encode(accept) } } }
      register("BIND3")
      status, body = e.request("POST", "/__emulator/openhw/bind", cjson.encode{ device_sn = "BIND3" })
      assert.equal(409, status)
      assert.truthy(body:find("timestamp must be a JSON string", 1, true), body)
    end)

    it("pushes a model_ticket every 10 minutes of emulator time, and unbind", function()
      v.set_rules{ ["/hw"] = { { body = "" } } }
      local mt = register("UNB1")
      e.control("/__emulator/openhw/bind", { device_sn = "UNB1" })
      local before = #v.requests("/hw")
      e.control("/__emulator/clock", { advance = 600 })
      local reqs = wait_for(function() local l = v.requests("/hw"); return #l > before and l end)
      local ev = open_hw(reqs[#reqs])
      assert.equal("model_ticket", ev.event.event_type)
      local tok = e.json("POST", "/cgi-bin/openhw/get_model_token",
        { model_id = hw.model_id, model_secret = hw.model_secret, model_ticket = ev.event.model_ticket })
      assert.is_string(tok.model_access_token)
      e.control("/__emulator/openhw/unbind", { device_sn = "UNB1" })
      reqs = wait_for(function() local l = v.requests("/hw"); return #l > before + 1 and l end)
      assert.equal("unbind", open_hw(reqs[#reqs]).event.event_type)
      assert.is_string(mt)
    end)
  end)

  describe("WeChat Pay notifications", function()
    local function verify(req)
      local h = req.headers
      local pay = e.credentials.pay
      local f = io.open(pay.platform_certificate_path); local pem = f:read("*a"); f:close()
      local pub = crypto.public_key(pem)
      return pub:verify(h["wechatpay-timestamp"] .. "\n" .. h["wechatpay-nonce"] .. "\n" .. req.body .. "\n",
        crypto.base64_decode(h["wechatpay-signature"]))
    end

    it("signs the notification and encrypts the resource", function()
      v.set_rules{ ["/pay"] = { { status = 204 } } }
      local r = e.control("/__emulator/callbacks/pay/notify", { resource = { out_trade_no = "T1", trade_state = "SUCCESS" } })
      assert.equal("delivered", r.outcome)
      local req = v.requests("/pay")[1]
      assert.is_true(verify(req))
      local n = cjson.decode(req.body)
      assert.equal("encrypt-resource", n.resource_type)
      local plain = crypto.aes_gcm_decrypt(e.credentials.pay.apiv3_key, n.resource.nonce,
        n.resource.associated_data, crypto.base64_decode(n.resource.ciphertext))
      assert.equal("T1", cjson.decode(plain).out_trade_no)
    end)

    it("retries on the documented schedule in emulator time", function()
      v.set_rules{ ["/pay"] = { { status = 500 }, { status = 200 } } }
      local r = e.control("/__emulator/callbacks/pay/notify", {})
      assert.equal("retry", r.outcome)
      e.control("/__emulator/clock", { advance = 14 })
      socket.sleep(0.1)
      assert.equal(1, #v.requests("/pay"))
      e.control("/__emulator/clock", { advance = 1 })
      local reqs = wait_for(function() local l = v.requests("/pay"); return #l == 2 and l end)
      assert.equal(2, #reqs)
      assert.equal(cjson.decode(reqs[1].body).id, cjson.decode(reqs[2].body).id)
      wait_for(function() return #e.control("/__emulator/callbacks").pay_pending == 0 end)
      assert.equal(0, #e.control("/__emulator/callbacks").pay_pending)
    end)

    it("can send SIGNTEST probes and bad signatures", function()
      v.set_rules{ ["/pay"] = { { status = 200 } } }
      e.control("/__emulator/callbacks/pay/notify", { signtest = true })
      e.control("/__emulator/callbacks/pay/notify", { bad_signature = true })
      local reqs = v.requests("/pay")
      assert.truthy(reqs[1].headers["wechatpay-signature"]:find("^WECHATPAY/SIGNTEST/"))
      assert.is_false(verify(reqs[2]))
    end)
  end)
end)

-- Mini Program hardware and WMPF endpoints of the emulator, plain HTTP.
local emulator = require "support.emulator"
local cjson = require "cjson"

describe("emulator Mini Program hardware", function()
  local e, mp, tok
  setup(function()
    e = emulator.start{ seed = 3 }
    mp = e.credentials.mp
  end)
  teardown(function() if e then e.stop() end end)
  before_each(function()
    e.control("/__emulator/reset", {})
    tok = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret).access_token
  end)

  local function post(path, body, token)
    return e.json("POST", path .. "?access_token=" .. (token or tok), body)
  end

  describe("getsnticket", function()
    it("issues a ticket valid for 5 minutes of emulator time", function()
      local r = post("/wxa/getsnticket", { sn = "SN_001-a", model_id = mp.model_id })
      assert.equal(0, r.errcode)
      assert.is_string(r.sn_ticket)
      local q = "/__emulator/mp/snticket?ticket=" .. r.sn_ticket .. "&sn=SN_001-a"
      assert.is_true(e.control(q).valid)
      e.control("/__emulator/clock", { advance = 299 })
      assert.is_true(e.control(q).valid)
      e.control("/__emulator/clock", { advance = 2 })
      assert.is_false(e.control(q).valid)
    end)
    it("applies the sn rules and the model check", function()
      assert.equal(9800001, post("/wxa/getsnticket", { sn = string.rep("a", 129), model_id = mp.model_id }).errcode)
      assert.equal(0, post("/wxa/getsnticket", { sn = string.rep("a", 128), model_id = mp.model_id }).errcode)
      assert.equal(9800002, post("/wxa/getsnticket", { sn = "bad sn", model_id = mp.model_id }).errcode)
      assert.equal(9800002, post("/wxa/getsnticket", { sn = "中文", model_id = mp.model_id }).errcode)
      assert.equal(9800003, post("/wxa/getsnticket", { sn = "ok", model_id = "nope" }).errcode)
    end)
    it("checks the access token", function()
      assert.equal(41001, e.json("POST", "/wxa/getsnticket", { sn = "a", model_id = mp.model_id }).errcode)
      assert.equal(40001, post("/wxa/getsnticket", { sn = "a", model_id = mp.model_id }, "forged").errcode)
      e.control("/__emulator/clock", { advance = 7201 })
      assert.equal(42001, post("/wxa/getsnticket", { sn = "a", model_id = mp.model_id }).errcode)
    end)
    it("rejects a WeCom token and form-encoded bodies", function()
      local c = e.credentials.wecom
      local wt = e.json("GET", "/cgi-bin/gettoken?corpid=" .. c.corpid .. "&corpsecret=" .. c.corpsecret).access_token
      assert.equal(40001, post("/wxa/getsnticket", { sn = "a", model_id = mp.model_id }, wt).errcode)
      assert.equal(47001, post("/wxa/getsnticket", "sn=a&model_id=" .. mp.model_id).errcode)
    end)
  end)

  describe("device messages", function()
    local msg = function(openids)
      return { template_id = "tmpl1", sn = "dev1", modelId = mp.model_id, to_openid_list = openids,
        page = "index", data = { thing1 = { value = "open" } }, lang = "zh_CN" }
    end
    it("needs the user's subscription (9800006), then delivers", function()
      assert.equal(9800006, post("/cgi-bin/message/device/subscribe/send", msg{ "oUser1" }).errcode)
      local t = post("/wxa/getsnticket", { sn = "dev1", model_id = mp.model_id }).sn_ticket
      e.control("/__emulator/mp/subscribe", { openid = "oUser1", sn = "dev1", model_id = mp.model_id,
        template_id = "tmpl1", sn_ticket = t })
      assert.equal(0, post("/cgi-bin/message/device/subscribe/send", msg{ "oUser1" }).errcode)
      assert.equal(9800006, post("/cgi-bin/message/device/subscribe/send", msg{ "oUser1", "oUser2" }).errcode)
      local sent = e.control("/__emulator/mp/messages").messages
      assert.equal(1, #sent)
      assert.equal("open", sent[1].data.thing1.value)
    end)
    it("accepts model_id in snake case too and checks the data shape", function()
      e.control("/__emulator/mp/subscribe", { openid = "o1", sn = "dev1", model_id = mp.model_id, template_id = "tmpl1" })
      local m = msg{ "o1" }
      m.modelId = nil; m.model_id = mp.model_id
      assert.equal(0, post("/cgi-bin/message/device/subscribe/send", m).errcode)
      m.data = { thing1 = "open" }
      assert.equal(47001, post("/cgi-bin/message/device/subscribe/send", m).errcode)
      m = msg{}
      assert.equal(47001, post("/cgi-bin/message/device/subscribe/send", m).errcode)
    end)
  end)

  describe("groups", function()
    local function devs(from, to, model)
      local l = {}
      for i = from, to do l[#l + 1] = { model_id = model or mp.model_id, sn = "g" .. i } end
      return l
    end
    it("creates, fills to 50 with per-device errcodes, expands to 200", function()
      local g = post("/wxa/business/group/createid", { model_id = mp.model_id, group_name = "lobby" })
      assert.equal(0, g.errcode)
      local r = post("/wxa/business/group/adddevice", { group_id = g.group_id, device_list = devs(1, 49) })
      assert.equal(49, #r.device_list)
      r = post("/wxa/business/group/adddevice", { group_id = g.group_id, device_list = devs(49, 52) })
      assert.same({ 9800015, 0, 9800016, 9800016 }, {
        r.device_list[1].errcode, r.device_list[2].errcode, r.device_list[3].errcode, r.device_list[4].errcode })
      local info = post("/wxa/business/group/getinfo", { group_id = g.group_id })
      assert.equal(50, #info.device_list)
      assert.equal("lobby", info.group_name)
      assert.equal(mp.model_type, info.model_type)
      assert.equal(47001, post("/wxa/business/group/expand", { group_id = g.group_id, max_device_count = 100,
        province_name = "广东省", city_name = "深圳市" }).errcode)
      assert.equal(0, post("/wxa/business/group/expand", { group_id = g.group_id, max_device_count = 200,
        province_name = "广东省", city_name = "深圳市" }).errcode)
      r = post("/wxa/business/group/adddevice", { group_id = g.group_id, device_list = devs(51, 52) })
      assert.equal(0, r.device_list[1].errcode)
    end)
    it("keeps a device in one group unless force_add moves it", function()
      local a = post("/wxa/business/group/createid", { model_id = mp.model_id, group_name = "a" }).group_id
      local b = post("/wxa/business/group/createid", { model_id = mp.model_id, group_name = "b" }).group_id
      post("/wxa/business/group/adddevice", { group_id = a, device_list = devs(1, 1) })
      local r = post("/wxa/business/group/adddevice", { group_id = b, device_list = devs(1, 1) })
      assert.equal(9800015, r.device_list[1].errcode)
      r = post("/wxa/business/group/adddevice", { group_id = b, device_list = devs(1, 1), force_add = true })
      assert.equal(0, r.device_list[1].errcode)
      assert.equal(0, #post("/wxa/business/group/getinfo", { group_id = a }).device_list)
      r = post("/wxa/business/group/removedevice", { group_id = b, device_list = devs(1, 1) })
      assert.equal(0, r.device_list[1].errcode)
      assert.equal(0, #post("/wxa/business/group/getinfo", { group_id = b }).device_list)
      -- removing it again, or from a group that never held it: 9800017 (removeIotGroupDevice)
      r = post("/wxa/business/group/removedevice", { group_id = b, device_list = devs(1, 1) })
      assert.equal(0, r.errcode)
      assert.equal(9800017, r.device_list[1].errcode)
      post("/wxa/business/group/adddevice", { group_id = a, device_list = devs(1, 1) })
      r = post("/wxa/business/group/removedevice", { group_id = b, device_list = devs(1, 1) })
      assert.equal(9800017, r.device_list[1].errcode)
      assert.equal(1, #post("/wxa/business/group/getinfo", { group_id = a }).device_list)
    end)
    it("rejects other model types, bad names and unknown groups", function()
      local g = post("/wxa/business/group/createid", { model_id = mp.model_id, group_name = "x" }).group_id
      local r = post("/wxa/business/group/adddevice", { group_id = g, device_list = devs(1, 1, mp.other_model_id) })
      assert.equal(9800014, r.device_list[1].errcode)
      assert.equal(9800012, post("/wxa/business/group/createid", { model_id = mp.model_id, group_name = string.rep("x", 33) }).errcode)
      assert.equal(9800012, post("/wxa/business/group/createid", { model_id = mp.model_id, group_name = "" }).errcode)
      assert.equal(9800003, post("/wxa/business/group/createid", { model_id = "zz", group_name = "x" }).errcode)
      assert.equal(9800013, post("/wxa/business/group/getinfo", { group_id = "nope" }).errcode)
    end)
  end)

  it("starts a VoIP call only for an authorised user", function()
    local body = { model_id = mp.model_id, sn = "door1", openid = "oCaller", room_type = "video", payload = "p1" }
    assert.equal(9800010, post("/wxa/business/iot/voip/call", body).errcode)
    e.control("/__emulator/mp/voip_authorize", { openid = "oCaller", sn = "door1", model_id = mp.model_id })
    local r = post("/wxa/business/iot/voip/call", body)
    assert.equal(0, r.errcode)
    assert.is_string(r.roomid)
    local calls = e.control("/__emulator/mp/calls").calls
    assert.equal(r.roomid, calls[1].RoomId)
    assert.equal("p1", calls[1].Payload)
  end)
end)

describe("emulator WMPF", function()
  local e, app, mp, tok, dir
  setup(function()
    e = emulator.start{ seed = 4 }
    app, mp = e.credentials.host_app, e.credentials.mp
    dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
    assert(os.execute("openssl ecparam -name prime256v1 -genkey -noout -out " .. dir .. "/k.pem 2>/dev/null"))
    assert(os.execute("openssl pkey -in " .. dir .. "/k.pem -pubout -out " .. dir .. "/pub.pem 2>/dev/null"))
  end)
  teardown(function()
    if e then e.stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)
  before_each(function()
    e.control("/__emulator/reset", {})
    tok = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. app.appid .. "&secret=" .. app.secret).access_token
  end)
  -- product ids are 16-digit integers: cjson would print them as 4e+15, so
  -- bodies carry a "@PID@" placeholder replaced by the exact digits.
  local pid
  local function post(path, body, token)
    if type(body) == "table" then body = (cjson.encode(body):gsub('"@PID@"', pid or "0")) end
    local r, status, h, raw = e.json("POST", "/wxa/business/runtime/" .. path .. "?access_token=" .. (token or tok), body)
    if path == "createproduct" and r.errcode == 0 then pid = raw:match('"product_id":(%d+)') end
    return r, status, h, raw
  end
  local function sign(msg) -- as mmiot_ecdsa_sign.sh does, with the OpenSSL CLI
    local f = io.popen("printf '%s' '" .. msg .. "' | openssl dgst -sha256 -sign " .. dir .. "/k.pem | base64 -w0")
    local s = f:read("*a"); f:close()
    return s
  end
  local function read(p) local f = io.open(p); local s = f:read("*a"); f:close(); return s end

  it("provisions a product end to end and verifies device signatures", function()
    local _, _, _, raw = e.json("POST", "/wxa/business/runtime/createproduct?access_token=" .. tok,
      { english_product_name = "Door", chinese_product_name = "门", device_default_name = "door" })
    local pid_text = raw:match('"product_id":(%d+)')
    -- a JSON integer that fits the device's `int` (ActivateDevice.productId)
    assert.is_true(tonumber(pid_text) <= 2147483647, pid_text)
    pid = pid_text
    local function body(t) -- product_id as an exact JSON integer
      return (cjson.encode(t):gsub('"@PID@"', pid))
    end
    local r = e.json("POST", "/wxa/business/runtime/registerpubkey?access_token=" .. tok,
      body{ product_id = "@PID@", pubkey = read(dir .. "/pub.pem") })
    assert.equal(0, r.errcode); assert.equal(1, r.key_version)
    r = e.json("POST", "/wxa/business/runtime/adddevice?access_token=" .. tok,
      body{ product_id = "@PID@", device_id_list = { "dev-1", "dev-2" }, model_name = "m" })
    assert.equal(0, r.errcode)
    assert.equal(0, e.json("POST", "/wxa/business/runtime/bindwxaapp?access_token=" .. tok,
      body{ product_id = "@PID@", appid = mp.appid }).errcode)
    local act = e.control("/__emulator/wmpf/activate", body{ product_id = "@PID@", key_version = 1,
      device_id = "dev-1", signature = sign(pid .. "_dev-1"), host_appid = app.appid })
    assert.equal(0, act.errcode)
    act = e.control("/__emulator/wmpf/activate", body{ product_id = "@PID@", key_version = 1,
      device_id = "dev-2", signature = sign(pid .. "_dev-1") })
    assert.equal(10014, act.errcode)
    act = e.control("/__emulator/wmpf/activate", body{ product_id = "@PID@", key_version = 1,
      device_id = "dev-9", signature = sign(pid .. "_dev-9") })
    assert.equal(10002, act.errcode)
    act = e.control("/__emulator/wmpf/activate", body{ product_id = "@PID@", key_version = 2,
      device_id = "dev-1", signature = sign(pid .. "_dev-1") })
    assert.equal(10003, act.errcode)
  end)

  it("rejects a non-P-256 public key and the Mini Program token", function()
    post("createproduct", { english_product_name = "A", chinese_product_name = "A", device_default_name = "a" })
    local rsa = io.popen("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null | openssl pkey -pubout")
    local pem = rsa:read("*a"); rsa:close()
    assert.equal(47001, post("registerpubkey", { product_id = "@PID@", pubkey = pem }).errcode)
    assert.equal(47001, post("registerpubkey", { product_id = "@PID@", pubkey = "garbage" }).errcode)
    local mt = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret).access_token
    assert.equal(48001, post("adddevice", { product_id = "@PID@", device_id_list = { "x" } }, mt).errcode)
    assert.equal(47001, post("createproduct", { english_product_name = "A" }).errcode)
  end)

  it("pushes app messages with the documented errcodes", function()
    post("createproduct", { english_product_name = "A", chinese_product_name = "A", device_default_name = "a" })
    post("adddevice", { product_id = "@PID@", device_id_list = { "d1" }, model_name = "m" })
    local pt = e.control("/__emulator/wmpf/push_token", (cjson.encode{ product_id = "@PID@", device_id = "d1" }:gsub('"@PID@"', pid)))
    assert.equal(0, post("pushappmsg", { msg = "hello", push_token = pt.push_token }).errcode)
    assert.equal(45002, post("pushappmsg", { msg = string.rep("x", 5 * 1024 + 1), push_token = pt.push_token }).errcode)
    assert.equal(0, post("pushappmsg", { msg = string.rep("x", 5 * 1024), push_token = pt.push_token }).errcode)
    assert.equal(48012, post("pushappmsg", { msg = "hello", push_token = "nope" }).errcode)
    assert.equal(40101, post("pushappmsg", { push_token = pt.push_token }).errcode)
    local inbox = e.control("/__emulator/wmpf/messages").messages
    assert.equal("hello", inbox[1].msg)
    assert.equal(app.appid, inbox[1].appid)
    e.control("/__emulator/clock", { advance = 86401 })
    local fresh = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. app.appid .. "&secret=" .. app.secret).access_token
    assert.equal(48012, post("pushappmsg", { msg = "late", push_token = pt.push_token }, fresh).errcode)
  end)
end)

-- The emulator as a contract with sources (lua/wxhw/emulator/contract/):
-- every route has an entry with a source, docs/emulator.md's reference is
-- generated from it, the emulator enforces it (a missing or mistyped field
-- gets the table's errcode), the platforms' own samples pass it, the client
-- reads the documented responses and sends the documented field names and
-- JSON types (captured from the emulator's request log).
local emulator = require "support.emulator"
local http_server = require "support.http_server"
local cjson = require "cjson.safe"
local contract = require "wxhw.emulator.contract"
local validate = require "wxhw.emulator.validate"
local contract_md = require "wxhw.emulator.contract_md"
local client = require "wxhw.client"
local wecom = require "wxhw.wecom"

local FIXTURES = "spec/fixtures/platform-samples/"
local SAMPLES = dofile(FIXTURES .. "index.lua")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a"); f:close()
  return (s:gsub("^\239\187\191", "")) -- the SKIT samples start with a UTF-8 BOM
end

local function sample(s) return assert(cjson.decode(read(FIXTURES .. s.file)), s.file) end

describe("emulator contract table", function()
  it("gives every endpoint a method, a source and typed fields", function()
    local types = { string = true, integer = true, number = true, boolean = true, object = true, array = true, uint = true }
    local function check_fields(fields, where)
      for _, f in ipairs(fields) do
        local t = f[2] or f.type
        assert.is_true(types[t] == true, where .. "." .. tostring(f[1]) .. " has type " .. tostring(t))
        if f.items then
          assert.is_true(types[f.items.type] == true, where .. "." .. f[1] .. "[] has type " .. tostring(f.items.type))
          if f.items.fields then check_fields(f.items.fields, where .. "." .. f[1] .. "[]") end
        end
        if f.fields then check_fields(f.fields, where .. "." .. f[1]) end
      end
    end
    assert.is_true(#contract.entries >= 35)
    for _, e in ipairs(contract.entries) do
      assert.is_true(e.method == "GET" or e.method == "POST", e.path)
      assert.is_string(e.source, e.path)
      assert.is_true(#e.source > 10, e.path)
      assert.is_table(e.response, e.path)
      check_fields(e.body or e.query or { e.path_param }, e.path)
      if e.method == "POST" then assert.is_table(e.body, e.path .. ": a POST entry describes its body") end
    end
  end)

  it("validates fields by type, presence, length, characters, range and value", function()
    local specs = { { "sn", "string", req = true, min = 1, max = 4, chars = "%w_", err_len = 9800001, err_chars = 9800002 },
      { "n", "integer", least = 1, most = 9 }, { "kind", "string", enum = { "a", "b" } },
      { "modelId", "string", req = true, alias = "model_id" },
      { "list", "array", min = 1, max = 2, items = { type = "object", fields = { { "x", "integer", req = true } } } },
      { "data", "object", values = { type = "object", fields = { { "value", "string", req = true } } } } }
    local ok = { sn = "a_1", modelId = "m", list = { { x = 1 } } }
    assert.is_nil(validate.fields(ok, specs))
    assert.is_nil(validate.fields({ sn = "a", model_id = "m", list = { { x = 2 } }, data = { k = { value = "v" } } }, specs))
    local function kind(t) local k, p = validate.fields(t, specs); return k and (k .. " " .. p) end
    assert.equal("missing sn", kind{ modelId = "m", list = {} })
    assert.equal("missing sn", kind{ sn = "", modelId = "m" })
    assert.equal("type sn", kind{ sn = 5, modelId = "m" })
    assert.equal("len sn", kind{ sn = "abcde", modelId = "m" })
    assert.equal("chars sn", kind{ sn = "a-b", modelId = "m" })
    assert.equal("missing modelId", kind{ sn = "a" })
    assert.equal("range n", kind{ sn = "a", modelId = "m", n = 10, list = { { x = 1 } } })
    assert.equal("type n", kind{ sn = "a", modelId = "m", n = 1.5, list = { { x = 1 } } })
    assert.equal("enum kind", kind{ sn = "a", modelId = "m", kind = "c", list = { { x = 1 } } })
    assert.equal("len list", kind{ sn = "a", modelId = "m", list = { { x = 1 }, { x = 1 }, { x = 1 } } })
    assert.equal("missing list[2].x", kind{ sn = "a", modelId = "m", list = { { x = 1 }, {} } })
    assert.equal("type list", kind{ sn = "a", modelId = "m", list = { k = 1 } })
    assert.equal("missing data.k.value", kind{ sn = "a", modelId = "m", list = { { x = 1 } }, data = { k = {} } })
    local e = { err = 40101 }
    assert.equal(9800001, validate.errcode(e, specs[1], "len"))
    assert.equal(40101, validate.errcode(e, specs[1], "missing"))
    assert.equal(47001, validate.errcode({}, specs[2], "type"))
  end)

  it("is what docs/emulator.md says (regenerate: bin/wxhw emulator --contract-md docs/emulator.md)", function()
    local doc = read("docs/emulator.md")
    assert.equal(contract_md.render(), contract_md.current(doc))
    assert.truthy(doc:find("## Running it", 1, true)) -- the hand-written part stays
  end)
end)

describe("emulator against its contract", function()
  local e, cr, tokens
  setup(function()
    e = emulator.start{ seed = 5 }
    cr = e.credentials
    local function get(path) return e.json("GET", path) end
    tokens = {
      mp = get("/cgi-bin/token?grant_type=client_credential&appid=" .. cr.mp.appid .. "&secret=" .. cr.mp.secret).access_token,
      app = get("/cgi-bin/token?grant_type=client_credential&appid=" .. cr.host_app.appid .. "&secret=" .. cr.host_app.secret).access_token,
    }
    tokens.model = e.json("POST", "/cgi-bin/openhw/get_model_token", { model_id = cr.openhw.model_id,
      model_secret = cr.openhw.model_secret,
      model_ticket = e.control("/__emulator/openhw/model_ticket").model_ticket }).model_access_token
    assert(e.json("POST", "/cgi-bin/openhw/model/register_sn?model_access_token=" .. tokens.model,
      { device_sn = "Contract01" }).qr_code)
    local b = e.control("/__emulator/openhw/bind", { device_sn = "Contract01" })
    tokens.device = e.json("POST", "/cgi-bin/openhw/get_device_secret?model_access_token=" .. tokens.model,
      { auth_code = b.auth_code }).device_access_token
    assert.is_string(tokens.device)
  end)
  teardown(function() if e then e.stop() end end)

  local function query(entry)
    local t = entry.token
    if not t or t.where ~= "query" then return "" end
    local which = t.param == "model_access_token" and "model" or t.param == "device_access_token" and "device"
      or t.kinds.app and "app" or "mp"
    return "?" .. t.param .. "=" .. tokens[which]
  end

  -- Posts body to the entry's endpoint; returns the answer and the request log's verdict.
  local function post(entry, body)
    local res = e.json("POST", entry.path .. query(entry), body)
    local log = e.control("/__emulator/requests").requests
    local last = log[#log]
    assert.equal(entry.path, last.path)
    return res, last.contract, last
  end

  it("has an entry with a source for every route it serves, and serves every entry", function()
    local routes = e.control("/__emulator/").routes
    local served = {}
    for _, key in ipairs(routes) do
      served[key] = true
      local entry = contract.by_key[key]
      assert.is_table(entry, "route " .. key .. " has no contract entry")
      assert.is_true(type(entry.source) == "string" and entry.source ~= "", key)
    end
    for key in pairs(contract.by_key) do assert.is_true(served[key], "contract entry " .. key .. " is not served") end
  end)

  it("accepts every documented request sample and refuses it with a field missing or mistyped", function()
    local WRONG = { string = 12345, integer = "1", number = "1", boolean = "true", array = "x", object = "x" }
    local checked = 0
    for _, s in ipairs(SAMPLES) do
      if s.kind == "request" then
        local entry = assert(contract.by_key[s.path], s.path)
        local body = sample(s)
        local res, verdict = post(entry, body)
        if s.refused then
          assert.equal(s.refused, res.errcode, s.file .. ": " .. s.why)
          assert.matches("^refused", verdict)
        else
          assert.equal("ok", verdict, s.file .. " -> " .. cjson.encode(res))
          for _, f in ipairs(entry.body) do
            local name = body[f[1]] ~= nil and f[1] or f.alias
            if f.req and body[name] ~= nil then
              local keep = body[name]
              body[name] = nil
              local r, v = post(entry, body)
              assert.equal(validate.errcode(entry, f, "missing"), r.errcode, s.file .. " without " .. name)
              assert.matches("^refused", v)
              body[name] = WRONG[f[2]]
              r, v = post(entry, body)
              assert.equal(validate.errcode(entry, f, "type"), r.errcode, s.file .. " with a mistyped " .. name)
              assert.matches("^refused", v)
              body[name] = keep
              checked = checked + 1
            end
          end
        end
      end
    end
    assert.is_true(checked >= 40, checked)
  end)

  it("answers the documented errcodes for broken bodies", function()
    local function at(path) return contract.by_key[path] end
    assert.equal(9800001, post(at("/wxa/getsnticket"), { sn = ("s"):rep(129), model_id = cr.mp.model_id }).errcode)
    assert.equal(9800002, post(at("/wxa/getsnticket"), { sn = "a b", model_id = cr.mp.model_id }).errcode)
    assert.equal(9800012, post(at("/wxa/business/group/createid"), { model_id = cr.mp.model_id, group_name = ("g"):rep(33) }).errcode)
    assert.equal(40101, post(at("/wxa/business/runtime/pushappmsg"), { push_token = "t" }).errcode)
    assert.equal(45002, post(at("/wxa/business/runtime/pushappmsg"), { msg = ("m"):rep(5121), push_token = "t" }).errcode)
    assert.equal(47001, post(at("/wxa/business/runtime/adddevice"), { product_id = 1, device_id_list = { "d" } }).errcode)
    assert.equal(47001, post(at("/wxa/business/runtime/adddevice"), { product_id = "1", device_id_list = { "d" }, model_name = "m" }).errcode)
    assert.equal(40002, e.json("POST", "/cgi-bin/stable_token", { appid = cr.mp.appid, secret = cr.mp.secret }).errcode)
    assert.equal(44002, e.json("POST", "/wxa/getsnticket?access_token=" .. tokens.mp, "").errcode)
    assert.equal(43002, e.json("GET", "/wxa/getsnticket?access_token=" .. tokens.mp).errcode)
    assert.equal(43001, e.json("POST", "/cgi-bin/token?grant_type=client_credential&appid=" .. cr.mp.appid
      .. "&secret=" .. cr.mp.secret, "{}").errcode)
    assert.equal(41001, e.json("POST", "/wxa/getsnticket", "").errcode) -- the token before the body
    assert.equal(48001, e.json("POST", "/wxa/business/runtime/adddevice?access_token=" .. tokens.mp, {}).errcode)
    local status, body = e.request("GET", "/v3/iotmanage/device-inspections/ab%2Dc", nil,
      { Authorization = e.control("/__emulator/pay/authorization", { method = "GET",
        url = "/v3/iotmanage/device-inspections/ab%2Dc" }).authorization, ["User-Agent"] = "spec" })
    assert.equal(400, status)
    assert.equal("PARAM_ERROR", cjson.decode(body).code)
  end)

  it("answers successful calls within the documented response fields and types", function()
    local seen = {}
    local function ok(path, res)
      local entry = contract.by_key[path]
      assert.is_true(res.errcode == nil or res.errcode == 0, path .. " -> " .. cjson.encode(res))
      local kind, p = validate.fields(res, entry.response)
      assert.is_nil(kind, path .. ": " .. tostring(p) .. " " .. tostring(kind) .. " in " .. cjson.encode(res))
      local declared = { errcode = true, errmsg = true }
      for _, f in ipairs(entry.response) do declared[f[1]] = true end
      for k in pairs(res) do assert.is_true(declared[k], path .. " answers the undocumented field " .. k) end
      seen[#seen + 1] = path
      return res
    end
    local function call(path, body, q)
      local entry = contract.by_key[path]
      return ok(path, e.json(entry.method, path .. (q or query(entry)), body))
    end
    local mp, app = cr.mp, cr.host_app
    ok("/cgi-bin/token", e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret))
    call("/cgi-bin/stable_token", { grant_type = "client_credential", appid = mp.appid, secret = mp.secret })
    ok("/cgi-bin/gettoken", e.json("GET", "/cgi-bin/gettoken?corpid=" .. cr.wecom.corpid .. "&corpsecret=" .. cr.wecom.corpsecret))
    call("/cgi-bin/clear_quota", { appid = app.appid })
    call("/wxa/getsnticket", { sn = "SN1", model_id = mp.model_id })
    local gid = call("/wxa/business/group/createid", { model_id = mp.model_id, group_name = "Shapes" }).group_id
    local devices = { { model_id = mp.model_id, sn = "SH1" }, { model_id = mp.model_id, sn = "SH2" } }
    call("/wxa/business/group/adddevice", { group_id = gid, device_list = devices })
    call("/wxa/business/group/getinfo", { group_id = gid })
    call("/wxa/business/group/removedevice", { group_id = gid, device_list = { devices[1] } })
    call("/wxa/business/group/expand", { group_id = gid, max_device_count = 200, province_name = "广东省", city_name = "广州市" })
    e.control("/__emulator/mp/subscribe", { openid = "oS", sn = "SH1", model_id = mp.model_id, template_id = "T" })
    call("/cgi-bin/message/device/subscribe/send", { template_id = "T", sn = "SH1", model_id = mp.model_id,
      to_openid_list = { "oS" }, page = "", lang = "zh_CN", data = { k = { value = "v" } } })
    e.control("/__emulator/mp/voip_authorize", { openid = "oS", sn = "SH1", model_id = mp.model_id })
    call("/wxa/business/iot/voip/call", { model_id = mp.model_id, sn = "SH1", openid = "oS", room_type = "voice" })
    -- product_id read from the raw text: a JSON number beyond 2^53 would lose digits in a double
    local _, _, _, raw = e.json("POST", "/wxa/business/runtime/createproduct?access_token=" .. tokens.app,
      { english_product_name = "S", chinese_product_name = "S", device_default_name = "s" })
    ok("/wxa/business/runtime/createproduct", cjson.decode(raw))
    local pid = assert(raw:match('"product_id":(%d+)'))
    local function with_pid(t) return (cjson.encode(t):gsub('"@PID@"', pid)) end
    call("/wxa/business/runtime/registerpubkey", with_pid{ product_id = "@PID@",
      pubkey = require("wxhw.crypto").generate_ec_key():public_pem() })
    call("/wxa/business/runtime/adddevice", with_pid{ product_id = "@PID@", device_id_list = { "dv1" }, model_name = "M" })
    call("/wxa/business/runtime/bindwxaapp", with_pid{ product_id = "@PID@", appid = mp.appid })
    local pt = e.control("/__emulator/wmpf/push_token", with_pid{ product_id = "@PID@", device_id = "dv1" }).push_token
    call("/wxa/business/runtime/pushappmsg", { msg = "hi", push_token = pt })
    local oh = cr.openhw
    local model = call("/cgi-bin/openhw/get_model_token", { model_id = oh.model_id, model_secret = oh.model_secret,
      model_ticket = e.control("/__emulator/openhw/model_ticket").model_ticket }).model_access_token
    local mq = "?model_access_token=" .. model
    call("/cgi-bin/openhw/model/register_sn", { device_sn = "Shape01" }, mq)
    call("/cgi-bin/openhw/model/register_sn", { device_sn = "Shape02" }, mq)
    call("/cgi-bin/openhw/model/unregister_sn", { device_sn = "Shape02" }, mq)
    local code = e.control("/__emulator/openhw/bind", { device_sn = "Shape01" }).auth_code
    local secret = call("/cgi-bin/openhw/get_device_secret", { auth_code = code }, mq).device_secret
    call("/cgi-bin/openhw/device/get_device_detail", { device_sn = "Shape01" }, mq)
    local dq = "?device_access_token=" .. call("/cgi-bin/openhw/get_device_token",
      { device_sn = "Shape01", device_secret = secret }, mq).device_access_token
    local page = call("/cgi-bin/openhw/device/get_userinfo_by_page", { limit = 2 }, dq)
    local u = page.userinfo.useritems[1]
    call("/cgi-bin/openhw/device/get_userinfo_by_ids", { user_item = { { open_userid = u.open_userid, user_type = u.user_type } } }, dq)
    local r = { open_userid = u.open_userid, user_type = u.user_type, timestamp = 1700000000 }
    call("/cgi-bin/openhw/device/report_checkin_data", { checkin_data = { r } }, dq)
    call("/cgi-bin/openhw/device/report_access_data", { access_data = { { open_userid = r.open_userid, user_type = r.user_type,
      timestamp = r.timestamp, pass_type = 1, pass_method = 1 } } }, dq)
    call("/cgi-bin/openhw/device/report_temperature_data", { temperature_data = { { open_userid = r.open_userid,
      user_type = r.user_type, timestamp = r.timestamp, temperature = "36.5", status = 0 } } }, dq)
    call("/cgi-bin/openhw/device/report_device_status", { online_status = 1, cur_version = "1.0" }, dq)
    local function pay(path, key)
      local auth = e.control("/__emulator/pay/authorization", { method = "GET", url = path }).authorization
      local status, body = e.request("GET", path, nil, { Authorization = auth, ["User-Agent"] = "spec" })
      assert.equal(200, status, body)
      ok(key or path, cjson.decode(body))
    end
    pay("/v3/certificates")
    pay("/v3/iotmanage/devices?offset=0&limit=2", "/v3/iotmanage/devices")
    local sn = e.control("/__emulator/pay/device?index=1").device_sn
    pay("/v3/iotmanage/device-inspections/" .. sn, "/v3/iotmanage/device-inspections/*")
    assert.is_true(#seen >= 31, #seen)
  end)

  -- Runs fn(e) and returns the JSON shape of the last request to `path`.
  local function sent_shape(path, fn)
    fn()
    local log = e.control("/__emulator/requests").requests
    for i = #log, 1, -1 do if log[i].path == path then return log[i].shape, log[i].contract end end
    error("the client sent nothing to " .. path)
  end

  -- Field names the client sends must be documented; types must match the sample's.
  local function compare(c, s, where, errs)
    if type(c) == "table" and type(s) == "table" then
      if c[1] ~= nil or s[1] ~= nil then
        if c[1] ~= nil and s[1] ~= nil then compare(c[1], s[1], where .. "[]", errs) end
      else
        for k, v in pairs(c) do if s[k] ~= nil then compare(v, s[k], where .. "." .. k, errs) end end
      end
    elseif c ~= s then
      errs[#errs + 1] = where .. ": the client sends " .. cjson.encode(c) .. ", the sample has " .. cjson.encode(s)
    end
  end

  it("sends the samples' field names and JSON types", function()
    local c = assert(client.new{ base_urls = { mp = e.base_url, wmpf = e.base_url, wecom = e.base_url },
      token_provider = { token = function() return tokens.mp end } })
    local mp = require("wxhw.mp").new(c, { model_id = cr.mp.model_id })
    local appc = assert(client.new{ base_urls = { wmpf = e.base_url }, token_provider = { token = function() return tokens.app end } })
    local wmpf = require("wxhw.wmpf").new(appc)
    local wc = wecom.new{ client = c, model_id = cr.openhw.model_id, model_secret = cr.openhw.model_secret,
      model_ticket = function() return e.control("/__emulator/openhw/model_ticket").model_ticket end }
    local pid = assert(wmpf:create_product{ english_product_name = "C", chinese_product_name = "C", device_default_name = "c" })
    local gid = assert(mp:group_create{ group_name = "Contract" })
    assert(wc:register_sn("Contract02"))
    local b = e.control("/__emulator/openhw/bind", { device_sn = "Contract02" })
    local secret = assert(wc:device_secret(b.auth_code))
    local dev = wc:device{ device_sn = "Contract02", device_secret = secret }
    local member
    for u in dev:members{ limit = 100 } do member = u; break end
    local rec = { open_userid = member.open_userid, user_type = member.user_type, timestamp = 1700000000 }
    local calls = {
      ["/wxa/getsnticket"] = function() mp:sn_ticket{ sn = "SN1" } end,
      ["/cgi-bin/message/device/subscribe/send"] = function() mp:send_device_message{ template_id = "T", sn = "SN1",
        openid = "o1", data = { time1 = "2021-09-10 19:00:00" }, page = "index", lang = "zh_CN", miniprogram_state = "formal" } end,
      ["/wxa/business/group/createid"] = function() mp:group_create{ group_name = "G2" } end,
      ["/wxa/business/group/getinfo"] = function() mp:group_info(gid) end,
      ["/wxa/business/group/adddevice"] = function() mp:group_add{ group_id = gid, devices = { "SN1", "SN2" } } end,
      ["/wxa/business/group/removedevice"] = function() mp:group_remove{ group_id = gid, devices = { "SN1", "SN2" } } end,
      ["/wxa/business/group/expand"] = function() mp:group_expand{ group_id = gid, province_name = "广东省", city_name = "广州市" } end,
      ["/wxa/business/iot/voip/call"] = function() mp:voip_call{ sn = "SN1", openid = "o1", room_type = "video",
        listener_name = "n", version_type = 0, query = "a=1", caller_camera_status = 0, listener_camera_status = 0,
        payload = "p" } end,
      ["/wxa/business/runtime/adddevice"] = function() wmpf:add_devices{ product_id = pid, device_ids = { "d1", "d2" },
        model_name = "M" } end,
      ["/wxa/business/runtime/pushappmsg"] = function() wmpf:push_app_msg{ msg = "m", push_token = "t" } end,
      ["/cgi-bin/stable_token"] = function()
        assert(require("wxhw.token").new{ source = "stable_token", appid = cr.mp.appid, secret = cr.mp.secret,
          base_url = e.base_url, store = "memory" }:token()) end,
      ["/cgi-bin/openhw/get_model_token"] = function()
        assert(require("wxhw.wecom").new{ client = c, model_id = cr.openhw.model_id, model_secret = cr.openhw.model_secret,
          model_ticket = e.control("/__emulator/openhw/model_ticket").model_ticket }:model_token()) end,
      ["/cgi-bin/openhw/get_device_secret"] = function()
        assert(wc:register_sn("Contract03"))
        wc:device_secret(e.control("/__emulator/openhw/bind", { device_sn = "Contract03" }).auth_code) end,
      ["/cgi-bin/openhw/get_device_token"] = function()
        assert(wc:device{ device_sn = "Contract02", device_secret = secret }.token:token()) end,
      ["/cgi-bin/openhw/model/register_sn"] = function() wc:register_sn("SN1") end,
      ["/cgi-bin/openhw/model/unregister_sn"] = function() wc:unregister_sn("SN1") end,
      ["/cgi-bin/openhw/device/get_device_detail"] = function() wc:device_detail("Contract02") end,
      ["/cgi-bin/openhw/device/report_device_status"] = function() dev:report_status{ online_status = 1,
        cur_version = "1.0", upgradable_version = "1.1", upgradable_version_desc = "d" } end,
      ["/cgi-bin/openhw/device/get_userinfo_by_page"] = function() for _ in dev:members{ limit = 100 } do break end end,
      ["/cgi-bin/openhw/device/get_userinfo_by_ids"] = function()
        dev:members_by_ids{ { open_userid = member.open_userid, user_type = member.user_type } } end,
      ["/cgi-bin/openhw/device/report_checkin_data"] = function() dev:report_checkin{ rec } end,
      ["/cgi-bin/openhw/device/report_access_data"] = function() dev:report_access{ { open_userid = rec.open_userid,
        user_type = rec.user_type, timestamp = rec.timestamp, pass_type = 1, pass_method = 1 } } end,
      ["/cgi-bin/openhw/device/report_temperature_data"] = function() dev:report_temperature{ { open_userid = rec.open_userid,
        user_type = rec.user_type, timestamp = rec.timestamp, temperature = "36.7", status = 0 } } end,
      ["/cgi-bin/openhw/device/report_firmware_upgrade_result"] = function() dev:report_firmware_upgrade_result{
        oper_id = "OPnone", errcode = 1, errmsg = "设备离线", cur_version = "1.0" } end,
      ["/cgi-bin/openhw/device/report_bio_info_result"] = function() dev:report_bio_info_result{
        oper_id = "OPnone", errcode = 1, errmsg = "设备离线" } end,
      ["/cgi-bin/openhw/device/report_remote_open_result"] = function() dev:report_remote_open_result{
        oper_id = "OPnone", type = "remote_open_door", errcode = 1, errmsg = "设备离线" } end,
    }
    local errs, compared = {}, 0
    for _, s in ipairs(SAMPLES) do
      local fn = s.kind == "request" and calls[s.path]
      if fn then
        local entry = contract.by_key[s.path]
        local shape, verdict = sent_shape(s.path, fn)
        assert.equal("ok", verdict, s.path)
        local want = validate.shape(sample(s))
        compare(shape, want, s.path, errs)
        local declared = {}
        for _, f in ipairs(entry.body) do
          declared[f[1]] = f
          if f.alias then declared[f.alias] = f end
        end
        for k in pairs(shape) do
          if want[k] == nil and not declared[k] then errs[#errs + 1] = s.path .. ": the client sends undocumented " .. k end
        end
        for k in pairs(want) do
          if shape[k] == nil and declared[k] and declared[k].req then
            errs[#errs + 1] = s.path .. ": the client leaves out required " .. k
          end
        end
        compared = compared + 1
      end
    end
    assert.same({}, errs)
    assert.is_true(compared >= 25, compared)
  end)
end)

describe("client reading the documented responses", function()
  local raw, c
  -- The raw server writes latin-1: non-ASCII characters go as JSON \u escapes.
  local function ascii_json(s)
    return (s:gsub("[\224-\239][\128-\191][\128-\191]", function(ch)
      local a, b, d = ch:byte(1, 3)
      return ("\\u%04x"):format((a % 16) * 4096 + (b % 64) * 64 + d % 64)
    end))
  end
  local function body_of(path)
    for _, s in ipairs(SAMPLES) do
      if s.kind == "response" and s.path == path then return read(FIXTURES .. s.file) end
    end
  end
  setup(function()
    local routes = {}
    for _, s in ipairs(SAMPLES) do
      if s.kind == "response" then routes[s.path] = { body = ascii_json(read(FIXTURES .. s.file)) } end
    end
    raw = assert(http_server.raw(routes))
    c = assert(client.new{ base_urls = { mp = raw.base_url, wmpf = raw.base_url, wecom = raw.base_url },
      token_provider = { token = function() return "TOKEN" end } })
  end)
  teardown(function() if raw then raw:stop() end end)

  it("reads the Mini Program hardware samples", function()
    local mp = require("wxhw.mp").new(c, { model_id = "MODEL_ID" })
    -- the page's example carries no sn_ticket: a success without a ticket is not a ticket
    local t, err = mp:sn_ticket{ sn = "SN1" }
    assert.is_nil(t)
    assert.equal("wx", err.kind)
    assert.is_true(mp:send_device_message{ template_id = "T", sn = "SN1", openid = "o", data = { k = "v" } })
    assert.equal("GROUP_ID", mp:group_create{ group_name = "GROUP_NAME" })
    local info = assert(mp:group_info("GROUP_ID"))
    assert.same({ "GROUP_NAME", "门禁机", 2, "SN2" }, { info.group_name, info.model_type, #info.device_list, info.device_list[2].sn })
    local res = assert(mp:group_add{ group_id = "GROUP_ID", devices = { { model_id = "MODEL_ID1", sn = "SN1" },
      { model_id = "MODEL_ID2", sn = "SN2" } } })
    assert.same({ "SN1", "SN2" }, res.added)
    assert.same({}, res.failed)
    assert.is_true(mp:group_expand{ group_id = "GROUP_ID", province_name = "广东省", city_name = "广州市" })
    assert.truthy(body_of("/wxa/business/group/expand"))
  end)

  it("reads the WMPF samples", function()
    local w = require("wxhw.wmpf").new(c)
    assert.same({ added = 3, chunks = 1 }, w:add_devices{ product_id = 100000,
      device_ids = { "deviceid_1", "deviceid_2", "deviceid_3" }, model_name = "YOUR_MODEL_NAME" })
    assert.is_true(w:push_app_msg{ msg = "your msg", push_token = "your push token" })
  end)

  it("reads the WeCom openhw samples", function()
    local wc = wecom.new{ client = c, model_id = "mdddddccc7775555aaa", model_secret = "ldAE_H9anCRN21GKXVfdAAAAAAAAAAAAAAAAAA",
      model_ticket = "Cfp0_givEagXcYJIztF6sfbdmIZCmpaR8ZBsvJEFFNBrWmnD5-CGYJ3_NhYexMyw" }
    assert.equal("61W3mEpU66027wgNZ_MhGHNQDHnFATkDa9-2llMBjUwxRSNPbVsMmyD-yq8wZETSoE5NQgecigDrSHkPtIYA", wc:model_token())
    assert.equal("https://open.work.weixin.qq.com/connect/hardware?hw_code=lS5***********", wc:register_sn("SN1"))
    local d = assert(wc:device_detail("SN1"))
    assert.is_true(d.bound)
    assert.same({ open_corpid = "wpTD_dsdfsdfsdfsdfs1w", corp_name = "测试企业" }, d.corp_info)
    assert.equal("ddddddd", wc:device_secret(("a"):rep(64)))
    local dev = wc:device{ device_sn = "SN1", device_secret = "ddddddd" }
    assert.equal("61W3mEpU66027wgNZ_MhGHNQDHnFATkDa9-2llMBjUwxRSNPbVsMmyD-yq8wZETSoE5NQgecigDrSHkPtIYA", dev.token:token())
    assert.equal(5, dev:perm_version())
    local first
    for u in dev:members() do first = u; break end
    assert.same({ "ww***********", "张三", 2 }, { first.open_userid, first.user_name, #first.pass_rule.rule_list })
    local users = assert(dev:members_by_ids{ { open_userid = "张三", user_type = 0 } })
    assert.equal("ww***********", users[1].open_userid)
    local r = { open_userid = "x2", user_type = 0, timestamp = 12345 }
    local res = assert(dev:report_checkin{ r })
    assert.same({ sent = 1, failed = { r } }, res)
    res = assert(dev:report_access{ { open_userid = "x2", user_type = 0, timestamp = 12345, pass_type = 1, pass_method = 1 } })
    assert.same({ r }, res.failed)
    res = assert(dev:report_temperature{ { open_userid = "zhangsan", user_type = 2, timestamp = 12345,
      temperature = "36.7", status = 0 } })
    assert.same({ { open_userid = "zhangsan", user_type = 2, timestamp = 12345 } }, res.failed)
  end)
end)

-- wxhw.mp against the emulator: sn tickets, device messages, groups with
-- per-device errcodes and the 50/200 limits, the server-initiated VoIP call.
local emulator = require "support.emulator"
local client = require "wxhw.client"
local token = require "wxhw.token"
local mp_mod = require "wxhw.mp"

describe("wxhw.mp", function()
  local emu, mp, cr
  setup(function()
    emu = emulator.start{}
    cr = emu.credentials
    local mgr = token.new{ source = "stable_token", appid = cr.mp.appid, secret = cr.mp.secret,
      base_url = emu.base_url, store = "memory" }
    mp = mp_mod.new(assert(client.new{ base_urls = { mp = emu.base_url }, token_provider = mgr,
      retry = { attempts = 2, base_delay = 0.01 } }), { model_id = cr.mp.model_id })
  end)
  teardown(function() if emu then emu.stop() end end)

  it("checks sn rules locally before sending", function()
    assert.is_nil(mp_mod.sn_error("Ab_0-9"))
    assert.is_nil(mp_mod.sn_error(("x"):rep(128)))
    local msg, code = mp_mod.sn_error(("x"):rep(129))
    assert.equal(9800001, code)
    assert.matches("129 bytes", msg)
    msg, code = mp_mod.sn_error("a.b")
    assert.equal(9800002, code)
    assert.matches('illegal character "%." at byte 2', msg)
    local before = emu.control("/__emulator/counters").endpoints["/wxa/getsnticket"] or 0
    local t, err = mp:sn_ticket{ sn = "bad sn" }
    assert.is_nil(t)
    assert.equal("input", err.kind)
    assert.equal(9800002, err.errcode)
    assert.equal(before, emu.control("/__emulator/counters").endpoints["/wxa/getsnticket"] or 0)
  end)

  it("gets an sn ticket the emulator accepts for that sn and model", function()
    local t = assert(mp:sn_ticket{ sn = "SN_T1" })
    assert.matches("^%w+$", t)
    local rec = emu.control("/__emulator/mp/snticket?ticket=" .. t)
    assert.is_true(rec.valid)
    assert.equal("SN_T1", rec.sn)
    local _, err = mp:sn_ticket{ sn = "SN_T2", model_id = "nosuchmodel" }
    assert.equal(9800003, err.errcode)
    assert.equal("wx", err.kind)
  end)

  it("sends a device message with both model id spellings and checks lang/state", function()
    local _, err = mp:send_device_message{ template_id = "T", sn = "SN1", openid = "o1", data = { a = "1" }, lang = "fr" }
    assert.matches("lang must be", err.message)
    _, err = mp:send_device_message{ template_id = "T", sn = "SN1", openid = "o1", data = {}, miniprogram_state = "beta" }
    assert.matches("miniprogram_state", err.message)
    _, err = mp:send_device_message{ template_id = "T", sn = "SN1", to_openid_list = {}, data = {} }
    assert.matches("at least one openid", err.message)
    -- not subscribed: the platform's errcode comes back
    local ok
    ok, err = mp:send_device_message{ template_id = "T", sn = "SN_MSG", openid = "oUser1", data = { k = "v" } }
    assert.is_nil(ok)
    assert.equal("wx", err.kind)
    assert.equal(9800006, err.errcode)
    emu.control("/__emulator/mp/subscribe", { openid = "oUser1", sn = "SN_MSG", model_id = cr.mp.model_id, template_id = "T" })
    ok, err = mp:send_device_message{ template_id = "T", sn = "SN_MSG", openid = "oUser1", data = { k = "v", n = 3 },
      page = "index?x=1", lang = "en_US", miniprogram_state = "trial" }
    assert.is_true(ok, tostring(err))
    local msgs = emu.control("/__emulator/mp/messages").messages
    local m = msgs[#msgs]
    assert.equal("v", m.data.k.value)
    assert.equal("3", m.data.n.value)
    assert.equal(cr.mp.model_id, m.model_id)
    assert.equal("index?x=1", m.page)
  end)

  it("creates groups, adds with per-device errcodes, enforces 50 and expands to 200", function()
    local _, err = mp:group_create{ group_name = ("n"):rep(33) }
    assert.equal(9800012, err.errcode)
    local g = assert(mp:group_create{ group_name = "Spec group" })
    local devs = {}
    for i = 1, 50 do devs[i] = ("G%03d"):format(i) end
    local res = assert(mp:group_add{ group_id = g, devices = devs })
    assert.equal(50, #res.added)
    assert.equal(0, #res.failed)
    -- full at 50: per-device 9800016; already in: 9800015
    res = assert(mp:group_add{ group_id = g, devices = { "G001", "G051" } })
    local codes = {}
    for _, f in ipairs(res.failed) do codes[f.sn] = f.errcode end
    assert.equal(9800015, codes.G001)
    assert.equal(9800016, codes.G051)
    assert.equal("group is full", res.failed[2].errmsg)
    -- other model type: 9800014
    res = assert(mp:group_add{ group_id = g, devices = { { sn = "OTHER1", model_id = cr.mp.other_model_id } } })
    assert.equal(9800014, res.failed[1].errcode)
    -- more than 200 in one call is refused locally
    local many = {}
    for i = 1, 201 do many[i] = "M" .. i end
    _, err = mp:group_add{ group_id = g, devices = many }
    assert.equal("input", err.kind)
    assert.equal(9800016, err.errcode)
    _, err = mp:group_expand{ group_id = g }
    assert.matches("province_name", err.message)
    assert(mp:group_expand{ group_id = g, province_name = "广东", city_name = "深圳" })
    res = assert(mp:group_add{ group_id = g, devices = { "G051" } })
    assert.equal(1, #res.added)
    local info = assert(mp:group_info(g))
    assert.equal(51, #info.device_list)
    assert.equal("Spec group", info.group_name)
    res = assert(mp:group_remove{ group_id = g, devices = { "G051", "G050" } })
    assert.equal(2, #res.removed)
    assert.equal(49, #assert(mp:group_info(g)).device_list)
    -- a device the group does not hold: per-device 9800017, named
    res = assert(mp:group_remove{ group_id = g, devices = { "G051", "G001" } })
    assert.same({ "G001" }, res.removed)
    assert.same({ "G051" }, res.not_in_group)
    assert.equal(9800017, res.failed[1].errcode)
    assert.equal("device not in the group (removedevice)", res.failed[1].errmsg)
    _, err = mp:group_info("nosuchgroup")
    assert.equal(9800013, err.errcode)
  end)

  it("starts a server-initiated VoIP call and surfaces an unauthorised user", function()
    local ok, err = mp:voip_call{ sn = "SN_CALL", openid = "oCaller", room_type = "video" }
    assert.is_nil(ok)
    assert.equal("wx", err.kind)
    emu.control("/__emulator/mp/voip_authorize", { sn = "SN_CALL", model_id = cr.mp.model_id, openid = "oCaller" })
    ok, err = mp:voip_call{ sn = "SN_CALL", openid = "oCaller", room_type = "voice", listener_name = "Door" }
    assert.is_string(ok, tostring(err))
    local calls = emu.control("/__emulator/mp/calls").calls
    assert.equal("SN_CALL", calls[#calls].Sn)
    assert.equal(ok, calls[#calls].RoomId)
    ok, err = mp:voip_call{ sn = "SN_CALL", openid = "oCaller", room_type = "fax" }
    assert.matches("room_type", err.message)
  end)

  it("raises on programmer misuse", function()
    assert.has_error(function() mp_mod.new({}) end)
    assert.has_error(function() mp:group_info(nil) end)
    assert.has_error(function() mp:group_add{ group_id = "g", devices = {} } end)
  end)
end)

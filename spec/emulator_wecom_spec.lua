-- WeCom openhw (hardware cloud access) in the emulator, plain HTTP.
local emulator = require "support.emulator"
local periods = require "support.quota_periods"

describe("emulator WeCom openhw", function()
  local e, hw
  setup(function()
    e = emulator.start{ seed = 8 }
    hw = e.credentials.openhw
  end)
  teardown(function() if e then e.stop() end end)
  before_each(function() e.control("/__emulator/reset", {}) end)

  local function model_token()
    local t = e.control("/__emulator/openhw/model_ticket").model_ticket
    return e.json("POST", "/cgi-bin/openhw/get_model_token",
      { model_id = hw.model_id, model_secret = hw.model_secret, model_ticket = t })
  end
  local function mpost(path, body, tok)
    return e.json("POST", "/cgi-bin/openhw/" .. path .. "?model_access_token=" .. tok, body)
  end
  local function dpost(path, body, tok)
    return e.json("POST", "/cgi-bin/openhw/device/" .. path .. "?device_access_token=" .. tok, body)
  end
  -- register, bind (no vendor URL: accepted), exchange the auth_code
  local function bound_device(sn)
    local mt = model_token().model_access_token
    mpost("model/register_sn", { device_sn = sn }, mt)
    local b = e.control("/__emulator/openhw/bind", { device_sn = sn })
    local s = mpost("get_device_secret", { auth_code = b.auth_code }, mt)
    return mt, s, b.auth_code
  end

  it("issues a model token from a model_ticket (errcode only on failure)", function()
    local r = model_token()
    assert.is_nil(r.errcode)
    assert.equal(7200, r.expires_in)
    assert.is_string(r.model_access_token)
    local t = e.control("/__emulator/openhw/model_ticket").model_ticket
    assert.equal(40001, e.json("POST", "/cgi-bin/openhw/get_model_token",
      { model_id = hw.model_id, model_secret = "wrong", model_ticket = t }).errcode)
    assert.equal(40085, e.json("POST", "/cgi-bin/openhw/get_model_token",
      { model_id = hw.model_id, model_secret = hw.model_secret, model_ticket = "forged" }).errcode)
    e.control("/__emulator/clock", { advance = 1801 })
    assert.equal(40085, e.json("POST", "/cgi-bin/openhw/get_model_token",
      { model_id = hw.model_id, model_secret = hw.model_secret, model_ticket = t }).errcode)
  end)

  it("registers SNs by the WeCom rules, case-insensitively", function()
    local mt = model_token().model_access_token
    local a = mpost("model/register_sn", { device_sn = "ABC123" }, mt)
    assert.equal(0, a.errcode)
    assert.truthy(a.qr_code:find("^https://open.work.weixin.qq.com/connect/hardware%?hw_code="))
    assert.equal(a.qr_code, mpost("model/register_sn", { device_sn = "abc123" }, mt).qr_code)
    assert.equal(40058, mpost("model/register_sn", { device_sn = "ABC-123" }, mt).errcode)
    assert.equal(40058, mpost("model/register_sn", { device_sn = string.rep("A", 129) }, mt).errcode)
    assert.equal(0, mpost("model/register_sn", { device_sn = string.rep("A", 128) }, mt).errcode)
    assert.equal(40001, mpost("model/register_sn", { device_sn = "X1" }, "forged").errcode)
  end)

  it("turns a one-time auth_code into a device secret and device tokens", function()
    local mt, s, code = bound_device("DOOR1")
    assert.equal(0, s.errcode)
    assert.is_string(s.device_secret)
    assert.is_string(s.device_access_token)
    assert.equal(40029, mpost("get_device_secret", { auth_code = code }, mt).errcode)
    local t = mpost("get_device_token", { device_sn = "DOOR1", device_secret = s.device_secret }, mt)
    assert.is_nil(t.errcode)
    assert.is_string(t.device_access_token)
    assert.equal(40001, mpost("get_device_token", { device_sn = "DOOR1", device_secret = "x" }, mt).errcode)
    local d = mpost("device/get_device_detail", { device_sn = "door1" }, mt).device_detail
    assert.equal(1, d.bind_status)
    assert.equal(hw.auth_corpid, d.auth_corp_info.open_corpid)
    assert.equal(hw.auth_corpid, d.bind_corpinfo.open_corpid)
  end)

  it("auth codes expire after 10 minutes", function()
    local mt = model_token().model_access_token
    mpost("model/register_sn", { device_sn = "LATE1" }, mt)
    local b = e.control("/__emulator/openhw/bind", { device_sn = "LATE1" })
    e.control("/__emulator/clock", { advance = 601 })
    mt = model_token().model_access_token
    assert.equal(40029, mpost("get_device_secret", { auth_code = b.auth_code }, mt).errcode)
  end)

  it("pages the member list with a cursor (<= 200 a page)", function()
    local _, s = bound_device("PAGER1")
    local tok = s.device_access_token
    local seen, pages, cursor = {}, 0, nil
    repeat
      local r = dpost("get_userinfo_by_page", { cursor = cursor, limit = 200 }, tok)
      assert.equal(0, r.errcode)
      pages = pages + 1
      for _, u in ipairs(r.userinfo.useritems) do
        assert.is_nil(seen[u.open_userid]); seen[u.open_userid] = true
        assert.truthy(u.user_type == 0 or u.user_type == 2)
        assert.is_string(u.pass_rule.rule_list[1].rule)
      end
      cursor = r.next_cursor
    until cursor == ""
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(450, n); assert.equal(3, pages)
    assert.equal(40058, dpost("get_userinfo_by_page", { limit = 201 }, tok).errcode)
    local first = dpost("get_userinfo_by_page", { limit = 100 }, tok)
    assert.equal(100, #first.userinfo.useritems)
    local v = dpost("get_userinfo_by_page", { only_perm_version = true }, tok)
    assert.equal(first.perm_version, v.perm_version)
    e.control("/__emulator/openhw/members", {})
    assert.equal(40058, dpost("get_userinfo_by_page", { cursor = first.next_cursor }, tok).errcode)
  end)

  it("reports checkins and door passes with partial failures", function()
    periods.fresh_emulator_hour(e) -- the per-user limit counts per clock hour
    local _, s = bound_device("CLOCK1")
    local tok = s.device_access_token
    local users = dpost("get_userinfo_by_page", { limit = 3 }, tok).userinfo.useritems
    local u = users[1]
    local list = { { open_userid = u.open_userid, user_type = u.user_type, timestamp = 1700000000 },
      { open_userid = "nobody", user_type = 0, timestamp = 1700000001 } }
    local r = dpost("report_checkin_data", { checkin_data = list }, tok)
    assert.equal(0, r.errcode)
    assert.equal(1, #r.fail_list)
    assert.equal("nobody", r.fail_list[1].open_userid)
    local many = {}
    for i = 1, 101 do many[i] = list[1] end
    assert.equal(40058, dpost("report_checkin_data", { checkin_data = many }, tok).errcode)
    -- per-user hourly limit: this hour already has 1 record for u
    local ten = {}
    for i = 1, 10 do ten[i] = list[1] end
    assert.equal(1, #dpost("report_checkin_data", { checkin_data = ten }, tok).fail_list)
    r = dpost("report_access_data", { access_data = {
      { open_userid = users[2].open_userid, user_type = users[2].user_type, timestamp = 1, pass_type = 1, pass_method = 1 },
      { open_userid = users[2].open_userid, user_type = users[2].user_type, timestamp = 2, pass_type = 9, pass_method = 1 } } }, tok)
    assert.equal(1, #r.fail_list)
    local ids = dpost("get_userinfo_by_ids", { user_item = { { open_userid = users[3].open_userid, user_type = users[3].user_type },
      { open_userid = "nobody", user_type = 0 } } }, tok)
    assert.equal(1, #ids.userinfo.useritems)
    assert.equal(users[3].user_name, ids.userinfo.useritems[1].user_name)
  end)

  it("unbinding invalidates the device secret and tokens", function()
    local mt, s = bound_device("GONE1")
    e.control("/__emulator/openhw/unbind", { device_sn = "GONE1" })
    assert.equal(40001, dpost("get_userinfo_by_page", {}, s.device_access_token).errcode)
    assert.equal(40001, mpost("get_device_token", { device_sn = "GONE1", device_secret = s.device_secret }, mt).errcode)
    assert.equal(0, mpost("device/get_device_detail", { device_sn = "GONE1" }, mt).device_detail.bind_status)
  end)
end)

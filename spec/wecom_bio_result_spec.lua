-- report_bio_info_result without an oper_id (doc 96000: "oper_id不存在或者为空时生效"):
-- an entry made on the device itself names the user (open_userid, user_type)
-- and the kind (bio_info_type 1 fingerprint, 2 face). The platform takes it;
-- the client and the emulator used to demand an oper_id from an enter_page
-- command for every result.
local emulator = require "support.emulator"
local hw = require "support.wecom_hw"

describe("WeCom report_bio_info_result (doc 96000)", function()
  local emu, dev, tok, member
  setup(function()
    emu = emulator.start{ seed = 41 }
    dev, tok, member = hw.bound(emu, hw.client(emu), "BioDevice01")
  end)
  teardown(function() if emu then emu.stop() end end)

  local function raw(body)
    return emu.json("POST", "/cgi-bin/openhw/device/report_bio_info_result?device_access_token=" .. tok, body)
  end
  local function calls()
    return emu.control("/__emulator/counters").endpoints["/cgi-bin/openhw/device/report_bio_info_result"] or 0
  end

  it("reports an entry made on the device, without an oper_id", function()
    assert.is_true(dev:report_bio_info_result{ errcode = 0, errmsg = "ok", open_userid = member.open_userid,
      user_type = member.user_type, bio_info_type = 2 })
    local last
    for _, r in ipairs(emu.control("/__emulator/openhw/records").records) do
      if r.kind == "bio_info" then last = r end
    end
    assert.same({ member.open_userid, member.user_type, 2, 0 },
      { last.open_userid, last.user_type, last.bio_info_type, last.errcode })
  end)

  it("refuses locally an entry without its user or kind", function()
    local before = calls()
    for _, r in ipairs{
      { errcode = 0 },
      { errcode = 0, open_userid = member.open_userid, user_type = 1, bio_info_type = 1 },
      { errcode = 0, open_userid = member.open_userid, user_type = 0, bio_info_type = 3 },
      { errcode = -1, open_userid = member.open_userid, user_type = 0, bio_info_type = 1 },
    } do
      local ok, err = dev:report_bio_info_result(r)
      assert.is_nil(ok)
      assert.equal("input", err.kind)
    end
    assert.equal(before, calls())
  end)

  it("the emulator takes the documented shapes and refuses the rest", function()
    local u = { open_userid = member.open_userid, user_type = member.user_type, bio_info_type = 1 }
    assert.equal(0, raw{ errcode = 0, errmsg = "", open_userid = u.open_userid, user_type = u.user_type,
      bio_info_type = 1 }.errcode)
    -- an empty oper_id counts as absent
    assert.equal(0, raw{ oper_id = "", errcode = 1, open_userid = u.open_userid, user_type = u.user_type,
      bio_info_type = 2 }.errcode)
    assert.equal(47001, raw{ errcode = 0 }.errcode)
    assert.equal(47001, raw{ errcode = 0, open_userid = u.open_userid, user_type = u.user_type }.errcode)
    assert.equal(40058, raw{ errcode = 0, open_userid = u.open_userid, user_type = u.user_type, bio_info_type = 3 }.errcode)
    assert.equal(40058, raw{ errcode = 0, open_userid = "wo_nobody", user_type = 0, bio_info_type = 1 }.errcode)
    assert.equal(47001, raw{ errcode = 0, open_userid = u.open_userid, user_type = "0", bio_info_type = 1 }.errcode)
    -- an oper_id the platform never issued is still refused
    assert.equal(40058, raw{ oper_id = "OPER_ID", errcode = 0 }.errcode)
  end)
end)

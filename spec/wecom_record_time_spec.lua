-- A checkin / door-access / temperature record's timestamp is a uint32
-- (docs 95985, 95997, 95986): the client refuses anything else before
-- sending (a whole chunk of 100 would otherwise be refused), and the
-- emulator refuses what WeCom would (it took any JSON integer, -1 too).
local emulator = require "support.emulator"
local hw = require "support.wecom_hw"

describe("WeCom record timestamps (uint32)", function()
  local emu, dev, tok, member
  setup(function()
    emu = emulator.start{ seed = 47 }
    dev, tok, member = hw.bound(emu, hw.client(emu), "Clock01")
  end)
  teardown(function() if emu then emu.stop() end end)

  local function record(ts)
    return { open_userid = member.open_userid, user_type = member.user_type, timestamp = ts }
  end

  it("the client refuses a timestamp that is not a uint32 before sending", function()
    local before = emu.control("/__emulator/counters").endpoints["/cgi-bin/openhw/device/report_checkin_data"] or 0
    for _, ts in ipairs{ -1, 1700000000.5, 2 ^ 32, 1 / 0 } do
      local ok, err = dev:report_checkin{ record(1700000000), record(ts) }
      assert.is_nil(ok)
      assert.equal("input", err.kind)
      assert.matches("record 2: timestamp", err.message)
    end
    assert.equal(before, emu.control("/__emulator/counters").endpoints["/cgi-bin/openhw/device/report_checkin_data"] or 0)
    assert.equal(1, dev:report_checkin{ record(4294967295) }.sent)
  end)

  it("the emulator refuses it (47001)", function()
    for _, path in ipairs{ "report_checkin_data", "report_access_data", "report_temperature_data" } do
      local field = path:match("^report_(.-)$")
      for _, ts in ipairs{ -1, 4294967296 } do
        local r = record(ts)
        r.pass_type, r.pass_method, r.temperature, r.status = 1, 1, "36.5", 0
        local res = emu.json("POST", "/cgi-bin/openhw/device/" .. path .. "?device_access_token=" .. tok,
          { [field] = { r } })
        assert.equal(47001, res.errcode, path .. " " .. ts)
      end
    end
  end)
end)

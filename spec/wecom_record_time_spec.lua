-- A checkin / door-access / temperature record's timestamp is a uint32
-- (docs 95985, 95997, 95986): the client refuses anything else before
-- sending (a whole chunk of 100 would otherwise be refused), and the
-- emulator refuses what WeCom would (it took any JSON integer, -1 too).
local emulator = require "support.emulator"
local client = require "wxhw.client"
local wecom = require "wxhw.wecom"
local hw = require "support.wecom_hw"

describe("WeCom record timestamps (uint32)", function()
  local emu, dev, tok, member
  setup(function()
    emu = emulator.start{ seed = 47 }
    local cr = emu.credentials.openhw
    local wc = wecom.new{ client = assert(client.new{ base_urls = { wecom = emu.base_url }, retry = { attempts = 1 } }),
      model_id = cr.model_id, model_secret = cr.model_secret,
      model_ticket = function() return emu.control("/__emulator/openhw/model_ticket").model_ticket end }
    local secret = hw.bind_quietly(emu, wc, "Clock01", "")
    dev = wc:device{ device_sn = "Clock01", device_secret = secret }
    for u in dev:members{ limit = 10 } do member = u; break end
    local mt = emu.json("POST", "/cgi-bin/openhw/get_model_token", { model_id = cr.model_id,
      model_secret = cr.model_secret, model_ticket = emu.control("/__emulator/openhw/model_ticket").model_ticket })
    tok = emu.json("POST", "/cgi-bin/openhw/get_device_token?model_access_token=" .. mt.model_access_token,
      { device_sn = "Clock01", device_secret = secret }).device_access_token
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

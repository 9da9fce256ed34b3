-- The emulator never crashes on bad input: every product endpoint answers
-- hostile bodies with a documented error, and --state survives a restart.
local emulator = require "support.emulator"
local cjson = require "cjson"

local ENDPOINTS = {
  "/cgi-bin/token", "/cgi-bin/stable_token", "/cgi-bin/gettoken", "/wxa/getsnticket",
  "/cgi-bin/message/device/subscribe/send", "/wxa/business/group/createid", "/wxa/business/group/getinfo",
  "/wxa/business/group/adddevice", "/wxa/business/group/removedevice", "/wxa/business/group/expand",
  "/wxa/business/iot/voip/call", "/wxa/business/runtime/createproduct", "/wxa/business/runtime/registerpubkey",
  "/wxa/business/runtime/adddevice", "/wxa/business/runtime/bindwxaapp", "/wxa/business/runtime/pushappmsg",
  "/cgi-bin/openhw/get_model_token", "/cgi-bin/openhw/get_device_secret", "/cgi-bin/openhw/get_device_token",
  "/cgi-bin/openhw/model/register_sn", "/cgi-bin/openhw/device/get_device_detail",
  "/cgi-bin/openhw/device/get_userinfo_by_page", "/cgi-bin/openhw/device/get_userinfo_by_ids",
  "/cgi-bin/openhw/device/report_checkin_data", "/cgi-bin/openhw/device/report_access_data",
  "/v3/certificates", "/v3/iotmanage/devices", "/v3/iotmanage/device-inspections/X",
}
local BODIES = { "", "null", "[]", "{}", "1", '"s"', "{bad", '{"sn":1,"model_id":[],"group_id":{},"device_list":"x"}',
  '{"device_list":[1,2,"x",null],"device_id_list":[{}],"product_id":"abc","checkin_data":[1],"user_item":[null]}',
  '{"product_id":1e400,"limit":-5,"cursor":{},"msg":123,"push_token":[]}', string.rep("[", 5000),
  '{"grant_type":"client_credential","appid":1,"secret":true,"force_refresh":"x"}', "\0\1\2\255" }

describe("emulator robustness", function()
  local e
  setup(function() e = emulator.start{ seed = 2 } end)
  teardown(function() if e then e.stop() end end)

  it("answers hostile input on every endpoint without a 500", function()
    local mp = e.credentials.mp
    local tok = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret).access_token
    for _, path in ipairs(ENDPOINTS) do
      for _, q in ipairs{ "", "?access_token=" .. tok, "?access_token=%zz&model_access_token=&device_access_token=x&offset=1&limit=x" } do
        for _, body in ipairs(BODIES) do
          for _, method in ipairs{ "POST", "GET" } do
            local status, raw = e.request(method, path .. q, method == "POST" and body or nil)
            assert.is_number(status, path)
            assert.is_true(status < 500, path .. " " .. method .. " " .. body:sub(1, 40) .. " -> " .. tostring(status) .. " " .. tostring(raw))
            local t = cjson.decode(raw)
            assert.is_true(t.errcode ~= nil or t.code ~= nil or t.access_token ~= nil or t.data ~= nil, path .. " " .. raw)
          end
        end
      end
    end
    assert.is_true(e.control("/__emulator/health").ok)
  end)
end)

describe("emulator --state", function()
  it("keeps products, groups, tokens and the clock across a restart", function()
    local state = os.tmpname()
    os.remove(state)
    local e = emulator.start{ seed = 5, state = state }
    local app, mp = e.credentials.host_app, e.credentials.mp
    local at = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. app.appid .. "&secret=" .. app.secret).access_token
    local _, _, _, raw = e.json("POST", "/wxa/business/runtime/createproduct?access_token=" .. at,
      { english_product_name = "P", chinese_product_name = "P", device_default_name = "p" })
    local pid = raw:match('"product_id":(%d+)')
    local mt = e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret).access_token
    local g = e.json("POST", "/wxa/business/group/createid?access_token=" .. mt, { model_id = mp.model_id, group_name = "kept" }).group_id
    e.control("/__emulator/clock", { advance = 1000 })
    e.request("POST", "/__emulator/shutdown", "{}") -- graceful: saves
    e.stop()
    local e2 = emulator.start{ seed = 5, state = state }
    finally(function() e2.stop(); os.remove(state) end)
    assert.is_true(e2.control("/__emulator/clock").offset >= 1000)
    local info = e2.json("POST", "/wxa/business/group/getinfo?access_token=" .. mt, { group_id = g })
    assert.equal(0, info.errcode)
    assert.equal("kept", info.group_name)
    local products = e2.control("/__emulator/wmpf/products").products
    assert.equal(1, #products)
    local _, raw2 = e2.request("GET", "/__emulator/wmpf/products")
    assert.truthy(raw2:find('"product_id":' .. pid, 1, true))
    -- a new token after restart does not collide with the old ones
    local mt2 = e2.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. mp.appid .. "&secret=" .. mp.secret).access_token
    assert.not_equal(mt, mt2)
  end)
end)

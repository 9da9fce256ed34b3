-- The emulator's errmsgs are WeChat's, not the contract's notes: a refusal
-- used to read "data format error (also: unknown product_id, chosen)" or
-- "订阅model_id和sn关系检查失败 (community)"; the pages say "data format error",
-- "推送内容长度超过限制", "订阅model_id和sn关系检查失败".
local emulator = require "support.emulator"

describe("emulator errmsgs", function()
  local e, mp, app
  setup(function()
    e = emulator.start{ seed = 53 }
    local cr = e.credentials
    local function token(a)
      return e.json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" .. a.appid .. "&secret=" .. a.secret)
        .access_token
    end
    mp, app = token(cr.mp), token(cr.host_app)
  end)
  teardown(function() if e then e.stop() end end)

  local function msg(r) return (r.errmsg:gsub(" hint: .*$", "")) end

  it("carry no note of the contract's", function()
    local r = e.json("POST", "/wxa/business/runtime/adddevice?access_token=" .. app,
      { product_id = 1, device_id_list = { "d1" } })
    assert.same({ 47001, "data format error" }, { r.errcode, msg(r) })
    r = e.json("POST", "/wxa/business/runtime/pushappmsg?access_token=" .. app,
      { msg = string.rep("x", 5 * 1024 + 1), push_token = "p" })
    assert.same({ 45002, "推送内容长度超过限制" }, { r.errcode, msg(r) })
    r = e.json("POST", "/cgi-bin/message/device/subscribe/send?access_token=" .. mp, { template_id = "t",
      sn = "NoSuchSn1", modelId = e.credentials.mp.model_id or "m", to_openid_list = { "o" }, page = "",
      lang = "zh_CN", data = { time1 = { value = "x" } } })
    assert.equal(9800006, r.errcode)
    assert.falsy(r.errmsg:find("(", 1, true), r.errmsg)
  end)
end)

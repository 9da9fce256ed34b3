-- wxhw.wmpf backend APIs against the emulator (硬件信息管理后台接口): product, public
-- key, devices in chunks, Mini Program binding, push messages (5 KB checked
-- locally; 40101/45002/48012 from the platform), host-app token required.
local emulator = require "support.emulator"
local client = require "wxhw.client"
local token = require "wxhw.token"
local crypto = require "wxhw.crypto"
local wmpf_mod = require "wxhw.wmpf"

describe("wxhw.wmpf APIs", function()
  local emu, cr, w, as_mp
  setup(function()
    emu = emulator.start{}
    cr = emu.credentials
    local function c(appid, secret)
      return assert(client.new{ base_urls = { wmpf = emu.base_url, mp = emu.base_url },
        retry = { attempts = 2, base_delay = 0.01 },
        token_provider = token.new{ source = "stable_token", appid = appid, secret = secret,
          base_url = emu.base_url, store = "memory" } })
    end
    w = wmpf_mod.new(c(cr.host_app.appid, cr.host_app.secret))
    as_mp = wmpf_mod.new(c(cr.mp.appid, cr.mp.secret))
  end)
  teardown(function() if emu then emu.stop() end end)

  it("creates a product, registers a key, adds devices in chunks, binds the Mini Program", function()
    local pid = assert(w:create_product{ english_product_name = "Lamp", chinese_product_name = "台灯",
      device_default_name = "My lamp" })
    assert.matches("^%d+$", pid)
    -- an `int` on the device (ActivateDevice.productId): the platform's ids fit in 32 bits
    assert.is_true(tonumber(pid) >= 1 and tonumber(pid) <= 2147483647, pid)
    -- the client still carries any size exactly, as a decimal string
    assert.equal("18446744073709551615", wmpf_mod.product_id_string("18446744073709551615"))
    local key = crypto.generate_ec_key()
    local kv = assert(w:register_pubkey{ product_id = pid, pubkey = key })
    assert.equal(1, kv)
    local kv2 = assert(w:register_pubkey{ product_id = pid, pubkey = crypto.generate_ec_key():public_pem() })
    assert.equal(2, kv2)
    local before = emu.control("/__emulator/counters").endpoints["/wxa/business/runtime/adddevice"] or 0
    local ids = {}
    for i = 1, 250 do ids[i] = ("W%04d"):format(i) end
    local res = assert(w:add_devices{ product_id = pid, device_ids = ids, model_name = "LampModel" })
    assert.equal(250, res.added)
    assert.equal(3, res.chunks)
    assert.equal(before + 3, emu.control("/__emulator/counters").endpoints["/wxa/business/runtime/adddevice"])
    local st = emu.control("/__emulator/wmpf/devices?product_id=" .. pid)
    assert.equal(250, #st.device_ids)
    assert.same({ "LampModel" }, st.model_names) -- sent with every chunk
    assert(w:bind_wxa_app{ product_id = pid, appid = cr.mp.appid })
    local _, err = w:bind_wxa_app{ product_id = pid, appid = "wxnotaminiprogram" }
    assert.equal(40013, err.errcode)
    -- the device signature activates the device with that key version, not the other
    local sig = wmpf_mod.device_signature(key, pid, "W0007")
    local a = emu.control("/__emulator/wmpf/activate", { product_id = pid, device_id = "W0007", key_version = kv, signature = sig })
    assert.equal(0, a.errcode)
    a = emu.control("/__emulator/wmpf/activate", { product_id = pid, device_id = "W0007", key_version = kv2, signature = sig })
    assert.equal(10014, a.errcode)
  end)

  it("checks device ids locally and refuses a non-host-app token", function()
    local pid = assert(w:create_product{ english_product_name = "X", chinese_product_name = "X", device_default_name = "X" })
    local _, err = w:add_devices{ product_id = pid, device_ids = { "ok1", "bad id" }, model_name = "M" }
    assert.equal("input", err.kind)
    assert.matches("device 2: device_id has a space", err.message)
    _, err = as_mp:add_devices{ product_id = pid, device_ids = { "ok1" }, model_name = "M" }
    assert.equal(48001, err.errcode)
    _, err = w:create_product{ english_product_name = "X" }
    assert.matches("chinese_product_name", err.message)
    _, err = w:register_pubkey{ product_id = pid, pubkey = crypto.generate_rsa_key and crypto.generate_rsa_key(2048):public_pem()
      or "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" }
    assert.truthy(err)
    assert.has_error(function() w:add_devices{ product_id = "12a", device_ids = { "x" }, model_name = "M" } end)
  end)

  it("requires model_name for adddevice (addDevice doc), and so does the emulator", function()
    local pid = assert(w:create_product{ english_product_name = "N", chinese_product_name = "N", device_default_name = "N" })
    assert.has_error(function() w:add_devices{ product_id = pid, device_ids = { "x" } } end,
      "wxhw.wmpf.add_devices: model_name required (the model registered on the WeChat terminal cooperation platform)")
    assert.has_error(function() w:add_devices{ product_id = pid, device_ids = { "x" }, model_name = "" } end)
    -- the platform refuses the call without it (the doc lists no errcode: 47001)
    local tok = assert(w.client.token_provider:token())
    for _, b in ipairs{ ('{"product_id":%s,"device_id_list":["x"]}'):format(pid),
                        ('{"product_id":%s,"device_id_list":["x"],"model_name":""}'):format(pid),
                        ('{"product_id":%s,"device_id_list":["x"],"model_name":7}'):format(pid) } do
      local r = emu.json("POST", "/wxa/business/runtime/adddevice?access_token=" .. tok, b)
      assert.equal(47001, r.errcode)
    end
    assert.equal(0, #emu.control("/__emulator/wmpf/devices?product_id=" .. pid).device_ids)
  end)

  it("pushes app messages: 5 KB checked before sending, platform errcodes mapped", function()
    local pid = assert(w:create_product{ english_product_name = "P", chinese_product_name = "P", device_default_name = "P" })
    assert(w:add_devices{ product_id = pid, device_ids = { "PUSH1" }, model_name = "M" })
    assert(w:bind_wxa_app{ product_id = pid, appid = cr.mp.appid })
    local app_tok = emu.control("/__emulator/wmpf/push_token", { product_id = pid, device_id = "PUSH1" }).push_token
    local mp_tok = emu.control("/__emulator/wmpf/push_token", { product_id = pid, device_id = "PUSH1", appid = cr.mp.appid }).push_token
    local before = emu.control("/__emulator/counters").endpoints["/wxa/business/runtime/pushappmsg"] or 0
    local ok, err = w:push_app_msg{ msg = ("x"):rep(5 * 1024 + 1), push_token = app_tok }
    assert.is_nil(ok)
    assert.equal("input", err.kind)
    assert.equal(45002, err.errcode)
    assert.equal(before, emu.control("/__emulator/counters").endpoints["/wxa/business/runtime/pushappmsg"] or 0)
    assert(w:push_app_msg{ msg = ("y"):rep(5 * 1024), push_token = app_tok })
    assert(w:push_app_msg{ msg = { cmd = "open" }, push_token = app_tok })
    assert(as_mp:push_app_msg{ msg = "hello", push_token = mp_tok })
    local inbox = emu.control("/__emulator/wmpf/messages").messages
    assert.equal('{"cmd":"open"}', inbox[#inbox - 1].msg)
    assert.equal(cr.mp.appid, inbox[#inbox].appid)
    -- a token issued for the Mini Program, sent as the host app: 48012
    ok, err = w:push_app_msg{ msg = "hi", push_token = mp_tok }
    assert.equal(48012, err.errcode)
    assert.matches("push_token invalid", err.message)
    ok, err = w:push_app_msg{ msg = "hi", push_token = "" }
    assert.equal(40101, err.errcode)
  end)
end)

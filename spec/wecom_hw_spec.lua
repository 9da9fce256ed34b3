-- The WeCom hardware surface of developer.work.weixin.qq.com/document/path/91342 (cloud-to-cloud attendance and door
-- access) end to end against the emulator: unregister_sn, device status,
-- member lookup by id, temperature reports, and the pushes the platform
-- sends to the vendor's gateway (verify_device, the device commands) whose
-- results come back through the device's report_* calls.
local emulator = require "support.emulator"
local client = require "wxhw.client"
local callback = require "wxhw.callback"
local httpserver = require "wxhw.httpserver"
local cjson = require "cjson"
local socket = require "socket"
local wecom = require "wxhw.wecom"
local request = require "support.pumped_request"
local hw = require "support.wecom_hw"

-- md5sum of the SNs the vendor owns / does not (the push carries only this)
local OURS_MD5 = "644e29d5a414c40bd8f15d29fa1e7df4" -- "VendorSn01"
local STRANGER_MD5 = "32a797897ac55a69c3b2e2a0048bd019" -- "Stranger99"

describe("wxhw.wecom hardware surface (openhw cloud access)", function()
  local emu, cr, wc, srv, commands, md5s, slow
  setup(function()
    emu = emulator.start{ seed = 31 }
    cr = emu.credentials
    wc = wecom.new{ client = assert(client.new{ base_urls = { wecom = emu.base_url }, retry = { attempts = 1 } }),
      model_id = cr.openhw.model_id, model_secret = cr.openhw.model_secret,
      model_ticket = function() return emu.control("/__emulator/openhw/model_ticket").model_ticket end }
    local oh = cr.openhw
    local opts = { token = oh.callback_token, encoding_aes_key = oh.encoding_aes_key, receive_id = oh.service_corpid }
    local full = wc:callback{ token = opts.token, encoding_aes_key = opts.encoding_aes_key, receive_id = opts.receive_id,
      on_verify_device = function(md5, base)
        md5s[#md5s + 1] = md5
        assert.is_nil(base.device_sn)
        if md5 == OURS_MD5 then return oh.model_id end
      end,
      on_command = function(cmd, base)
        commands[#commands + 1] = { cmd = cmd, base = base }
        if slow then socket.sleep(slow) end
        if base.device_sn == "Offline01" then return 1, "device offline" end
      end }
    -- a vendor that handles only the older events
    local bare = wc:callback{ token = opts.token, encoding_aes_key = opts.encoding_aes_key, receive_id = opts.receive_id }
    srv = assert(httpserver.new{ handler = callback.router{
      ["/hw"] = full, ["/bare"] = bare,
      ["/plain"] = function() return 200, { ["Content-Type"] = "application/json" }, '{"is_valid":true,"modelid":"m"}' end,
    } })
  end)
  teardown(function()
    if srv then srv:close() end
    if emu then emu.stop() end
  end)
  before_each(function()
    commands, md5s, slow = {}, {}, nil
    emu.control("/__emulator/callbacks", { openhw_url = "http://127.0.0.1:" .. srv.port .. "/hw", timeout_ms = 2000 })
  end)

  -- A control call whose answer waits for a push to this process's gateway:
  -- the request goes out without blocking and the gateway serves meanwhile.
  local function control_serving(path, body)
    local status, rbody = request(emu.port, "POST", "/__emulator/" .. path, cjson.encode(body),
      function() srv:step(0.01) end)
    return cjson.decode(rbody), status
  end

  local function calls(path)
    return emu.control("/__emulator/counters").endpoints["/cgi-bin/openhw/" .. path] or 0
  end

  local function bound_device(sn)
    local secret = hw.bind_quietly(emu, wc, sn, "http://127.0.0.1:" .. srv.port .. "/hw")
    return wc:device{ device_sn = sn, device_secret = secret }
  end

  local function operation(oper_id) return hw.operation(emu, oper_id) end

  it("deletes SNs that are not bound (unregister_sn)", function()
    assert(wc:register_sn("Spare01"))
    assert.is_true(wc:unregister_sn("SPARE01"))
    local _, err = wc:device_detail("Spare01")
    assert.equal("wx", err.kind)
    _, err = wc:unregister_sn("Spare01")
    assert.equal(40058, err.errcode)
    bound_device("Bound01")
    _, err = wc:unregister_sn("Bound01")
    assert.equal(40058, err.errcode)
    local before = calls("model/unregister_sn")
    _, err = wc:unregister_sn("bad-sn")
    assert.equal("input", err.kind)
    assert.equal(before, calls("model/unregister_sn"))
  end)

  it("reports the device status within WeCom's limits", function()
    local dev = bound_device("Status01")
    local before = calls("device/report_device_status")
    for _, bad in ipairs{
      { { online_status = 3, cur_version = "1" }, "online_status" },
      { { online_status = 1 }, "cur_version %(a string%) is required" },
      { { online_status = 1, cur_version = ("v"):rep(33) }, "cur_version is 33 bytes" },
      { { online_status = 1, cur_version = "1", upgradable_version = "2.0" }, "go together" },
      { { online_status = 1, cur_version = "1", upgradable_version = "2.0", upgradable_version_desc = ("d"):rep(257) },
        "256" },
    } do
      local ok, err = dev:report_status(bad[1])
      assert.is_nil(ok)
      assert.equal("input", err.kind)
      assert.matches(bad[2], err.message)
    end
    assert.equal(before, calls("device/report_device_status"))
    assert.is_true(dev:report_status{ online_status = 1, cur_version = "1.0", upgradable_version = "1.1",
      upgradable_version_desc = "重大升级" })
    local s = emu.control("/__emulator/openhw/devices").devices.Status01.status
    assert.same({ 1, "1.0", "1.1", "重大升级" }, { s.online_status, s.cur_version, s.upgradable_version,
      s.upgradable_version_desc })
    -- the emulator refuses what the client would not send
    local tok = assert(dev.token:token())
    local r = emu.json("POST", "/cgi-bin/openhw/device/report_device_status?device_access_token=" .. tok,
      { online_status = 3, cur_version = "1" })
    assert.equal(40058, r.errcode)
    r = emu.json("POST", "/cgi-bin/openhw/device/report_device_status?device_access_token=" .. tok, {})
    assert.equal(47001, r.errcode)
  end)

  it("looks members up by id and reports temperatures in chunks of 100", function()
    local dev = bound_device("Thermo01")
    local users = {}
    for u in dev:members{ limit = 200 } do users[#users + 1] = u end
    local found = assert(dev:members_by_ids{ { open_userid = users[1].open_userid, user_type = users[1].user_type },
      { open_userid = users[2].open_userid, user_type = users[2].user_type }, { open_userid = "wo_nobody" } })
    assert.equal(2, #found)
    assert.equal(users[1].user_name, found[1].user_name)
    local _, err = dev:members_by_ids{}
    assert.equal("input", err.kind)
    local many = {}
    for i = 1, 101 do many[i] = { open_userid = "u" .. i } end
    _, err = dev:members_by_ids(many)
    assert.equal("input", err.kind)
    local recs = {}
    for i = 1, 120 do
      local u = users[i]
      recs[i] = { open_userid = u.open_userid, user_type = u.user_type, temperature = "36." .. (i % 10),
        timestamp = 1700000000 + i, status = 0 }
    end
    recs[5].open_userid = "wo_nobody"
    local before = calls("device/report_temperature_data")
    local res = assert(dev:report_temperature(recs))
    assert.equal(120, res.sent)
    assert.equal(2, calls("device/report_temperature_data") - before)
    assert.equal(1, #res.failed)
    assert.equal("wo_nobody", res.failed[1].open_userid)
    _, err = dev:report_temperature{ { open_userid = "x", user_type = 0, timestamp = 1, temperature = 36.5, status = 0 } }
    assert.matches("temperature", err.message)
    _, err = dev:report_temperature{ { open_userid = "x", user_type = 0, timestamp = 1, temperature = "36.5", status = 3 } }
    assert.matches("status", err.message)
  end)

  it("answers verify_device within 1 s with an encrypted {is_valid, modelid}", function()
    local r = control_serving("openhw/verify_device", { device_sn = "VendorSn01" })
    assert.is_true(r.ok, tostring(r.reason))
    assert.is_true(r.is_valid)
    assert.equal(cr.openhw.model_id, r.modelid)
    r = control_serving("openhw/verify_device", { device_sn = "Stranger99" })
    assert.is_true(r.ok, tostring(r.reason))
    assert.is_false(r.is_valid)
    assert.same({ OURS_MD5, STRANGER_MD5 }, md5s)
    -- a plaintext answer is no answer; a gateway without the handler
    -- acknowledges events it does not know ("success", the callback default
    -- since 15bb91f), which is no answer to verify_device either
    emu.control("/__emulator/callbacks", { openhw_url = "http://127.0.0.1:" .. srv.port .. "/plain" })
    r = control_serving("openhw/verify_device", { device_sn = "VendorSn01" })
    assert.is_false(r.ok)
    assert.equal("reply must be the encrypted JSON answer", r.reason)
    emu.control("/__emulator/callbacks", { openhw_url = "http://127.0.0.1:" .. srv.port .. "/bare" })
    r = control_serving("openhw/verify_device", { device_sn = "VendorSn01" })
    assert.is_false(r.ok)
    assert.equal("reply must be the encrypted JSON answer", r.reason)
  end)

  it("delivers device commands and takes their results by oper_id", function()
    local dev = bound_device("Door01")
    -- fetch_device_status: the device reports at once
    local r = control_serving("openhw/command", { device_sn = "Door01", command_type = "fetch_device_status" })
    assert.is_true(r.ok, tostring(r.reason))
    assert.equal("fetch_device_status", commands[1].cmd.command_type)
    assert.equal("Door01", commands[1].base.device_sn)
    assert.equal(cr.openhw.model_id, commands[1].base.model_id)
    assert.is_true(dev:report_status{ online_status = 1, cur_version = "1.0" })
    local d = emu.control("/__emulator/openhw/devices").devices.Door01
    assert.is_true(d.status.reported_at >= d.status_requested_at)

    -- remote_open_door → report_remote_open_result
    r = control_serving("openhw/command", { device_sn = "Door01", command_type = "remote_open_door" })
    assert.is_true(r.ok, tostring(r.reason))
    local cmd = commands[2].cmd
    assert.equal(r.oper_id, cmd.oper_id)
    assert.is_string(cmd.open_userid)
    assert.equal("sent", operation(r.oper_id).state)
    assert.is_true(dev:report_remote_open_result{ oper_id = cmd.oper_id, errcode = 0 })
    assert.equal("succeeded", operation(r.oper_id).state)
    local _, err = dev:report_remote_open_result{ oper_id = "OPnot-issued", errcode = 0 }
    assert.equal(40058, err.errcode)
    _, err = dev:report_remote_open_result{ oper_id = cmd.oper_id, type = "scan_qrcode_open", errcode = 0 }
    assert.equal(40058, err.errcode)
    _, err = dev:report_remote_open_result{ oper_id = cmd.oper_id, type = "push", errcode = 0 }
    assert.equal("input", err.kind)

    -- update_firmware needs an offered upgrade; success needs a new version
    _, r = control_serving("openhw/command", { device_sn = "Door01", command_type = "update_firmware" })
    assert.equal(409, r)
    assert.is_true(dev:report_status{ online_status = 1, cur_version = "1.0", upgradable_version = "1.1",
      upgradable_version_desc = "fixes" })
    r = control_serving("openhw/command", { device_sn = "Door01", command_type = "update_firmware" })
    assert.is_true(r.ok, tostring(r.reason))
    assert.is_true(dev:report_firmware_upgrade_result{ oper_id = r.oper_id, errcode = 0, cur_version = "1.0" })
    assert.equal("upgrading", operation(r.oper_id).state)
    assert.is_true(dev:report_firmware_upgrade_result{ oper_id = r.oper_id, errcode = 0, cur_version = "1.1" })
    assert.equal("succeeded", operation(r.oper_id).state)
    assert.equal("1.1", emu.control("/__emulator/openhw/devices").devices.Door01.status.cur_version)
    _, err = dev:report_firmware_upgrade_result{ oper_id = r.oper_id, errcode = -1, cur_version = "1.1" }
    assert.equal("input", err.kind)
    _, err = dev:report_firmware_upgrade_result{ oper_id = r.oper_id, errcode = 0 }
    assert.matches("cur_version", err.message)

    -- enter_page (face entry) → report_bio_info_result; exit_page cancels a pending one
    r = control_serving("openhw/command", { device_sn = "Door01", command_type = "enter_page", page_type = "fa" })
    assert.is_true(r.ok, tostring(r.reason))
    cmd = commands[#commands].cmd
    assert.same({ "fa", 0, r.oper_id }, { cmd.page_type, cmd.user_type, cmd.oper_id })
    assert.is_true(dev:report_bio_info_result{ oper_id = r.oper_id, errcode = 1, errmsg = "设备离线" })
    assert.equal("failed", operation(r.oper_id).state)
    r = control_serving("openhw/command", { device_sn = "Door01", command_type = "enter_page", page_type = "fp" })
    local x = control_serving("openhw/command", { device_sn = "Door01", command_type = "exit_page", page_type = "fp",
      oper_id = r.oper_id })
    assert.is_true(x.ok, tostring(x.reason))
    assert.equal("exit_page", commands[#commands].cmd.command_type)
    assert.equal("cancelled", operation(r.oper_id).state)
  end)

  it("takes a result only from the device the command went to", function()
    local a, b = bound_device("PairA01"), bound_device("PairB01")
    local r = control_serving("openhw/command", { device_sn = "PairA01", command_type = "remote_open_door" })
    assert.is_true(r.ok, tostring(r.reason))
    local _, err = b:report_remote_open_result{ oper_id = r.oper_id, errcode = 0 }
    assert.equal(40058, err.errcode)
    _, err = a:report_bio_info_result{ oper_id = r.oper_id, errcode = 0 } -- not an enter_page
    assert.equal(40058, err.errcode)
    assert.is_true(a:report_remote_open_result{ oper_id = r.oper_id, errcode = 1, errmsg = "jammed" })
    assert.same({ "failed", 1, "jammed" }, { operation(r.oper_id).state, operation(r.oper_id).errcode,
      operation(r.oper_id).errmsg })
    -- the published sample's oper_id, once a command carried it (and only once)
    r = control_serving("openhw/command", { device_sn = "PairA01", command_type = "remote_open_door", oper_id = "OPER_ID" })
    assert.equal("OPER_ID", r.oper_id)
    assert.is_true(a:report_remote_open_result{ oper_id = "OPER_ID", type = "remote_open_door", errcode = 2,
      errmsg = "设备离线" })
    local _, status = control_serving("openhw/command", { device_sn = "PairA01", command_type = "remote_open_door",
      oper_id = "OPER_ID" })
    assert.equal(409, status)
    -- commands go to bound devices only, with a known command type
    assert(wc:register_sn("Loose01"))
    _, status = control_serving("openhw/command", { device_sn = "Loose01", command_type = "remote_open_door" })
    assert.equal(409, status)
    _, status = control_serving("openhw/command", { device_sn = "PairA01", command_type = "reboot" })
    assert.equal(409, status)
  end)

  it("a refused or late command is not delivered", function()
    bound_device("Offline01")
    local r = control_serving("openhw/command", { device_sn = "Offline01", command_type = "remote_open_door" })
    assert.is_false(r.ok)
    assert.equal("vendor refused with errcode 1 device offline", r.reason)
    assert.equal("refused", operation(r.oper_id).state)
    bound_device("Slow01")
    slow = 1.2
    r = control_serving("openhw/command", { device_sn = "Slow01", command_type = "remote_open_door" })
    assert.is_false(r.ok)
    assert.equal("refused", operation(r.oper_id).state)
  end)
end)

-- The user_scan command (doc 97390): a member scanned the device's QR code.
-- Unlike the other commands it is answered with the device's state, the
-- encrypted {"online_status": 1|2}, within 1000 ms; its oper_id is the one a
-- scan_qrcode_open result reports on (report_remote_open_result, doc 96048).
-- wxhw acknowledged it with "success" (an unknown event) and the emulator
-- could not send it, so no scan_qrcode_open result was ever accepted.
local emulator = require "support.emulator"
local callback = require "wxhw.callback"
local httpserver = require "wxhw.httpserver"
local cjson = require "cjson"
local request = require "support.pumped_request"
local hw = require "support.wecom_hw"

describe("WeCom user_scan command (doc 97390)", function()
  local emu, wc, srv, scans, status
  setup(function()
    emu = emulator.start{ seed = 43 }
    local oh = emu.credentials.openhw
    wc = hw.client(emu)
    local keys = { token = oh.callback_token, encoding_aes_key = oh.encoding_aes_key, receive_id = oh.service_corpid }
    local function gateway(extra)
      local o = { token = keys.token, encoding_aes_key = keys.encoding_aes_key, receive_id = keys.receive_id }
      for k, v in pairs(extra) do o[k] = v end
      return wc:callback(o)
    end
    srv = assert(httpserver.new{ handler = callback.router{
      ["/hw"] = gateway{ on_user_scan = function(cmd, base)
        scans[#scans + 1] = { cmd = cmd, base = base }
        return status
      end },
      -- a vendor that handles the other commands only
      ["/commands"] = gateway{ on_command = function() end },
    } })
  end)
  teardown(function()
    if srv then srv:close() end
    if emu then emu.stop() end
  end)
  before_each(function()
    scans, status = {}, 1
    emu.control("/__emulator/callbacks", { openhw_url = "http://127.0.0.1:" .. srv.port .. "/hw", timeout_ms = 2000 })
  end)

  local function command(body)
    local _, rbody = request(emu.port, "POST", "/__emulator/openhw/command", cjson.encode(body),
      function() srv:step(0.01) end)
    return cjson.decode(rbody)
  end
  local function operation(oper_id) return hw.operation(emu, oper_id) end

  it("answers with the device's online_status and takes the scan's open result", function()
    local secret = hw.bind_quietly(emu, wc, "ScanDoor01", "http://127.0.0.1:" .. srv.port .. "/hw")
    local dev = wc:device{ device_sn = "ScanDoor01", device_secret = secret }
    local r = command{ device_sn = "ScanDoor01", command_type = "user_scan", user_type = 1, state = "door-2" }
    assert.is_true(r.ok, tostring(r.reason))
    assert.equal(1, r.online_status)
    local cmd = scans[1].cmd
    assert.same({ "user_scan", r.oper_id, 1, "door-2" }, { cmd.command_type, cmd.oper_id, cmd.user_type, cmd.state })
    assert.is_string(cmd.open_userid)
    assert.equal("ScanDoor01", scans[1].base.device_sn)
    -- the door opened on the scan: a scan_qrcode_open result names the scan's oper_id
    local _, err = dev:report_remote_open_result{ oper_id = r.oper_id, errcode = 0 } -- not a remote_open_door
    assert.equal(40058, err.errcode)
    assert.is_true(dev:report_remote_open_result{ oper_id = r.oper_id, type = "scan_qrcode_open", errcode = 0 })
    assert.equal("succeeded", operation(r.oper_id).state)

    status = 2
    r = command{ device_sn = "ScanDoor01", command_type = "user_scan" }
    assert.is_true(r.ok, tostring(r.reason))
    assert.equal(2, r.online_status)
  end)

  it("a handler without an online_status, or no user_scan handler, is no answer", function()
    hw.bind_quietly(emu, wc, "ScanDoor02", "http://127.0.0.1:" .. srv.port .. "/hw")
    status = 3
    local r = command{ device_sn = "ScanDoor02", command_type = "user_scan" }
    assert.is_false(r.ok)
    assert.equal("refused", operation(r.oper_id).state)
    emu.control("/__emulator/callbacks", { openhw_url = "http://127.0.0.1:" .. srv.port .. "/commands" })
    r = command{ device_sn = "ScanDoor02", command_type = "user_scan" }
    assert.is_false(r.ok)
    assert.matches("encrypted", r.reason)
  end)
end)

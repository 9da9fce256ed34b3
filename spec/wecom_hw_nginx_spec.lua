-- The seed-003 WeCom hardware surface inside OpenResty (nginx-lua, LuaJIT,
-- cosocket transport): the gateway answers verify_device and the device
-- commands the emulator pushes, and the same workers report the results
-- (report_*_result with the command's oper_id) and the device status.
-- #lua54: nginx runs its own LuaJIT; once per spec run is enough.
local nginx = require "support.nginx"
local emulator = require "support.emulator"
local client = require "wxhw.client"
local wecom = require "wxhw.wecom"
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"
local hw = require "support.wecom_hw"

describe("wxhw.wecom hardware surface in OpenResty #lua54", function()
  local e, srv, dir, wc
  setup(function()
    e = emulator.start{ seed = 32 }
    local oh = e.credentials.openhw
    local p = io.popen("mktemp -d /tmp/wxhw-spec.XXXXXX")
    dir = p:read("*l")
    p:close()
    local f = assert(io.open(dir .. "/hw_conf.lua", "w"))
    f:write("return ", ("{ base_url = %q, model_id = %q, model_secret = %q, token = %q, aes = %q, corp = %q }")
      :format(e.base_url, oh.model_id, oh.model_secret, oh.callback_token, oh.encoding_aes_key, oh.service_corpid))
    f:close()
    srv = assert(nginx.start{
      lua_package_path = dir .. "/?.lua",
      http_block = "lua_shared_dict cmds 1m;",
      server_block = [[
        location = /hw {
          content_by_lua_block {
            local w = package.loaded["spec.hw_gateway"]
            if not w then
              local conf = require "hw_conf"
              local wc = require("wxhw.wecom").new{ model_id = conf.model_id, model_secret = conf.model_secret,
                client = require("wxhw.client").new{ base_urls = { wecom = conf.base_url } } }
              w = wc:callback{ token = conf.token, encoding_aes_key = conf.aes, receive_id = conf.corp,
                on_verify_device = function(md5)
                  if md5 == "644e29d5a414c40bd8f15d29fa1e7df4" then return conf.model_id end
                end,
                on_command = function(cmd, base)
                  ngx.shared.cmds:set(cmd.command_type, require("cjson").encode({ cmd = cmd, sn = base.device_sn }))
                end,
                on_user_scan = function(cmd, base)
                  ngx.shared.cmds:set("user_scan", require("cjson").encode({ cmd = cmd, sn = base.device_sn }))
                  return 1
                end }
              package.loaded["spec.hw_gateway"] = w
            end
            require("wxhw.callback.ngx").serve(w)
          }
        }
        location = /last {
          content_by_lua_block { ngx.say(ngx.shared.cmds:get(ngx.var.arg_type) or "{}") }
        }
        location = /act {
          content_by_lua_block {
            local cjson = require "cjson"
            ngx.req.read_body()
            local a = cjson.decode(ngx.req.get_body_data())
            local conf = require "hw_conf"
            local wc = require("wxhw.wecom").new{ model_id = conf.model_id, model_secret = conf.model_secret,
              model_ticket = a.model_ticket,
              client = require("wxhw.client").new{ base_urls = { wecom = conf.base_url } } }
            local dev = wc:device{ device_sn = a.device_sn, device_secret = a.device_secret }
            local ok, err = dev[a.call](dev, a.args)
            ngx.say(cjson.encode({ ok = ok and true or false, err = err and { kind = err.kind, errcode = err.errcode,
              message = err.message } or nil, transport = wc.client.transport.kind }))
          }
        }]],
    })
    e.control("/__emulator/callbacks", { openhw_url = srv.base_url .. "/hw" })
    wc = wecom.new{ client = assert(client.new{ base_urls = { wecom = e.base_url } }),
      model_id = oh.model_id, model_secret = oh.model_secret,
      model_ticket = function() return e.control("/__emulator/openhw/model_ticket").model_ticket end }
  end)
  teardown(function()
    if srv then srv:stop() end
    if e then e.stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  local function get(path)
    local out = {}
    local _, status = http.request{ url = srv.base_url .. path, sink = ltn12.sink.table(out) }
    return status, cjson.decode(table.concat(out))
  end

  local function act(dev, call, args)
    local body = cjson.encode({ device_sn = dev.sn, device_secret = dev.secret, call = call, args = args,
      model_ticket = e.control("/__emulator/openhw/model_ticket").model_ticket })
    local out = {}
    local _, status = http.request{ url = srv.base_url .. "/act", method = "POST", source = ltn12.source.string(body),
      headers = { ["Content-Type"] = "application/json", ["Content-Length"] = #body }, sink = ltn12.sink.table(out) }
    assert.equal(200, status, table.concat(out) .. srv:error_log())
    return cjson.decode(table.concat(out))
  end

  local function operation(oper_id) return hw.operation(e, oper_id) end

  it("answers verify_device and device commands; reports their results over cosockets", function()
    local r = e.control("/__emulator/openhw/verify_device", { device_sn = "VendorSn01" })
    assert.is_true(r.ok, tostring(r.reason) .. srv:error_log())
    assert.is_true(r.is_valid)
    assert.equal(e.credentials.openhw.model_id, r.modelid)
    assert.is_false(e.control("/__emulator/openhw/verify_device", { device_sn = "Stranger99" }).is_valid)

    -- a bound device (bound without asking the gateway)
    local dev = { sn = "NgxDoor01", secret = hw.bind_quietly(e, wc, "NgxDoor01", srv.base_url .. "/hw") }

    local res = act(dev, "report_status", { online_status = 1, cur_version = "1.0", upgradable_version = "1.1",
      upgradable_version_desc = "fixes" })
    assert.is_true(res.ok, cjson.encode(res))
    assert.equal("ngx", res.transport)
    res = act(dev, "report_status", { online_status = 1, upgradable_version = "1.1" })
    assert.equal("input", res.err.kind)

    r = e.control("/__emulator/openhw/command", { device_sn = "NgxDoor01", command_type = "remote_open_door" })
    assert.is_true(r.ok, tostring(r.reason) .. srv:error_log())
    local _, last = get("/last?type=remote_open_door")
    assert.equal(r.oper_id, last.cmd.oper_id)
    assert.equal("NgxDoor01", last.sn)
    assert.is_true(act(dev, "report_remote_open_result", { oper_id = last.cmd.oper_id, errcode = 0 }).ok)
    assert.equal("succeeded", operation(r.oper_id).state)

    r = e.control("/__emulator/openhw/command", { device_sn = "NgxDoor01", command_type = "update_firmware" })
    assert.is_true(r.ok, tostring(r.reason))
    _, last = get("/last?type=update_firmware")
    assert.is_true(act(dev, "report_firmware_upgrade_result", { oper_id = last.cmd.oper_id, errcode = 0,
      cur_version = "1.1" }).ok)
    assert.equal("succeeded", operation(r.oper_id).state)

    r = e.control("/__emulator/openhw/command", { device_sn = "NgxDoor01", command_type = "enter_page", page_type = "fp" })
    assert.is_true(r.ok, tostring(r.reason))
    _, last = get("/last?type=enter_page")
    assert.is_true(act(dev, "report_bio_info_result", { oper_id = last.cmd.oper_id, errcode = 0 }).ok)
    assert.equal("succeeded", operation(r.oper_id).state)
    res = act(dev, "report_bio_info_result", { oper_id = "OPforged", errcode = 0 })
    assert.equal(40058, res.err.errcode)

    -- user_scan (doc 97390): answered {"online_status":1}; the door opened on the scan
    r = e.control("/__emulator/openhw/command", { device_sn = "NgxDoor01", command_type = "user_scan", state = "s1" })
    assert.is_true(r.ok, tostring(r.reason) .. srv:error_log())
    assert.equal(1, r.online_status)
    _, last = get("/last?type=user_scan")
    assert.equal("s1", last.cmd.state)
    assert.is_true(act(dev, "report_remote_open_result", { oper_id = r.oper_id, type = "scan_qrcode_open",
      errcode = 0 }).ok)
    assert.equal("succeeded", operation(r.oper_id).state)
    -- an entry made on the device itself has no oper_id (doc 96000)
    assert.is_true(act(dev, "report_bio_info_result", { errcode = 0, open_userid = last.cmd.open_userid,
      user_type = 0, bio_info_type = 1 }).ok)

    local log = e.control("/__emulator/callbacks", nil, "GET").log
    for _, entry in ipairs(log) do
      assert.equal("delivered", entry.outcome, cjson.encode(entry))
      assert.is_true(entry.elapsed_ms < 1000)
    end
  end)
end)

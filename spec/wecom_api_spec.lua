-- wxhw.wecom (openhw) against the emulator: model/device tokens, register_sn
-- with WeCom's SN rules, device details, bind → device secret, members with
-- cursor paging and perm_version restarts, reports chunked at 100 with
-- per-record failures, and the model_ticket / bind / unbind callbacks.
local emulator = require "support.emulator"
local client = require "wxhw.client"
local msgcrypt = require "wxhw.msgcrypt"
local cjson = require "cjson.safe"
local wecom = require "wxhw.wecom"

describe("wxhw.wecom", function()
  local emu, cr, wc
  setup(function()
    emu = emulator.start{}
    cr = emu.credentials
    wc = wecom.new{ client = assert(client.new{ base_urls = { wecom = emu.base_url }, retry = { attempts = 2, base_delay = 0.01 } }),
      model_id = cr.openhw.model_id, model_secret = cr.openhw.model_secret,
      model_ticket = function() return emu.control("/__emulator/openhw/model_ticket").model_ticket end }
  end)
  teardown(function() if emu then emu.stop() end end)

  it("applies WeCom's SN rules locally", function()
    assert.is_nil(wecom.sn_error("Ab09"))
    assert.matches("illegal character \"_\"", wecom.sn_error("A_1"))
    assert.matches("illegal character \"%-\"", wecom.sn_error("A-1"))
    assert.matches("129 characters", wecom.sn_error(("a"):rep(129)))
    local before = emu.control("/__emulator/counters").endpoints["/cgi-bin/openhw/model/register_sn"] or 0
    local qr, err = wc:register_sn("bad-sn")
    assert.is_nil(qr)
    assert.equal("input", err.kind)
    assert.equal(before, emu.control("/__emulator/counters").endpoints["/cgi-bin/openhw/model/register_sn"] or 0)
  end)

  it("registers SNs (case-insensitively unique) and reads details in either spelling", function()
    local qr = assert(wc:register_sn("WcSn0001"))
    assert.matches("^https://open%.work%.weixin%.qq%.com/connect/hardware%?hw_code=", qr)
    assert.equal(qr, assert(wc:register_sn("wcsn0001")))
    local d = assert(wc:device_detail("WCSN0001"))
    assert.equal(qr, d.qr_code)
    assert.is_false(d.bound)
    assert.is_nil(d.corp_info)
    local _, err = wc:device_detail("Unknown01")
    assert.equal("wx", err.kind)
    assert.truthy(err.errcode)
  end)

  it("refreshes the model token once when the platform rejects it", function()
    assert(wc:register_sn("Refresh01"))
    local fetches = emu.control("/__emulator/counters").token_fetches["model:" .. cr.openhw.model_id]
    emu.control("/__emulator/tokens/invalidate", { owner = cr.openhw.model_id })
    assert(wc:register_sn("Refresh02"))
    assert.equal(fetches + 1, emu.control("/__emulator/counters").token_fetches["model:" .. cr.openhw.model_id])
    -- the token never shows up in hook logs
    assert.is_true(client.REDACT.model_access_token)
  end)

  local function bound_device(sn)
    assert(wc:register_sn(sn))
    local b = emu.control("/__emulator/openhw/bind", { device_sn = sn, verif_code = "1234" })
    assert.truthy(b.auth_code, cjson.encode(b))
    local secret = assert(wc:device_secret(b.auth_code))
    local _, err = wc:device_secret(b.auth_code) -- one use only
    assert.truthy(err)
    local d = assert(wc:device_detail(sn))
    assert.is_true(d.bound)
    assert.equal(cr.openhw.auth_corpid, d.corp_info.open_corpid)
    return wc:device{ device_sn = sn, device_secret = secret }
  end

  it("pages members by cursor and restarts when perm_version changes", function()
    local dev = bound_device("Member01")
    emu.control("/__emulator/openhw/members", { count = 250 })
    local seen, n = {}, 0
    for u, err in dev:members{ limit = 100 } do
      assert.truthy(u, tostring(err))
      local k = u.open_userid .. ":" .. u.user_type
      assert.is_nil(seen[k])
      seen[k] = true
      n = n + 1
    end
    assert.equal(250, n)
    local v = assert(dev:perm_version())
    -- change the permissions after the first page: paging starts over, no member twice
    local pages, bumped = 0, false
    seen, n = {}, 0
    for u in dev:members{ limit = 100, on_page = function()
      pages = pages + 1
      if not bumped then bumped = true; emu.control("/__emulator/openhw/members", { count = 260 }) end
    end } do
      local k = u.open_userid .. ":" .. u.user_type
      assert.is_nil(seen[k])
      seen[k] = true
      n = n + 1
    end
    assert.is_true(pages >= 4, "pages " .. pages)
    assert.is_true(n >= 250)
    assert.is_true(dev:perm_version() > v)
    assert.has_error(function() dev:members{ limit = 201 } end)
  end)

  it("reports check-ins and door passes in chunks of 100 with per-record failures", function()
    local dev = bound_device("Report01")
    local users = {}
    for u in dev:members{ limit = 200 } do users[#users + 1] = u end
    local recs = {}
    for i = 1, 150 do
      local u = users[(i % 5) + 1]
      recs[i] = { open_userid = u.open_userid, user_type = u.user_type, timestamp = 1700000000 + i }
    end
    recs[77] = { open_userid = "wo_not_a_member", user_type = 0, timestamp = 1700000077 }
    local before = emu.control("/__emulator/counters").endpoints["/cgi-bin/openhw/device/report_checkin_data"] or 0
    local res = assert(dev:report_checkin(recs))
    assert.equal(150, res.sent)
    assert.equal(2, (emu.control("/__emulator/counters").endpoints["/cgi-bin/openhw/device/report_checkin_data"]) - before)
    local failed = {}
    for _, f in ipairs(res.failed) do failed[f.open_userid] = (failed[f.open_userid] or 0) + 1 end
    assert.equal(1, failed.wo_not_a_member)
    -- 30 records per user within the hour: the per-user hourly limit fails the excess
    local total = 0
    for _, c in pairs(failed) do total = total + c end
    assert.is_true(total > 1)
    local _, err = dev:report_access{ { open_userid = users[1].open_userid, user_type = 0, timestamp = 1, pass_type = 9, pass_method = 1 } }
    assert.matches("record 1: pass_type", err.message)
    local r2 = assert(dev:report_access{ { open_userid = users[6].open_userid, user_type = users[6].user_type,
      timestamp = 1700000100, pass_type = 1, pass_method = 1 } })
    assert.equal(1, r2.sent)
    assert.equal(0, #r2.failed)
    _, err = dev:report_checkin{ { open_userid = "x", user_type = 1, timestamp = 1 } }
    assert.matches("user_type", err.message)
  end)

  it("handles model_ticket, bind and unbind callbacks within their deadlines", function()
    local oh = cr.openhw
    local mc = assert(msgcrypt.new{ token = oh.callback_token, encoding_aes_key = oh.encoding_aes_key,
      receive_id = oh.service_corpid })
    local unbound
    local handler = wc:callback{ token = oh.callback_token, encoding_aes_key = oh.encoding_aes_key,
      receive_id = oh.service_corpid,
      on_bind = function(ev, base)
        if ev.verif_code ~= "1234" then return 4, "verification code wrong" end
        assert.equal("Cb01", base.device_sn)
      end,
      on_unbind = function(_, base) unbound = base.device_sn end }
    local seq = 0
    local function push(event, base_extra)
      seq = seq + 1
      local base = { req_id = "req" .. seq .. tostring(os.time()), createtime = os.time(), model_id = oh.model_id,
        service_corpid = oh.service_corpid }
      for k, v in pairs(base_extra or {}) do base[k] = v end
      local plain = cjson.encode({ msg_type = "event", base_info = base, event = event })
      local ts, nonce = tostring(os.time()), tostring(100000 + seq)
      local body, sig = mc:push_body(plain, "wecom_json", ts, nonce, oh.service_corpid)
      local t0 = os.clock()
      local status, _, reply = handler("POST", { msg_signature = sig, timestamp = ts, nonce = nonce }, {}, body)
      return status, reply, os.clock() - t0
    end
    local status, reply, took = push({ event_type = "model_ticket", model_ticket = "TICKET-NEW" })
    assert.equal(200, status)
    assert.equal("success", reply)
    assert.is_true(took < 1.0)
    assert.equal("TICKET-NEW", wc.latest_ticket)
    status, reply = push({ event_type = "bind", auth_code = ("a"):rep(64), verif_code = "1234" }, { device_sn = "Cb01" })
    assert.equal(200, status)
    assert.equal("success", reply)
    status, reply, took = push({ event_type = "bind", auth_code = ("a"):rep(64), verif_code = "9999" }, { device_sn = "Cb01" })
    assert.equal(200, status)
    assert.is_true(took < 3.0)
    local t = cjson.decode(reply)
    local inner = assert(mc:decrypt(t.msgsignature, ("%d"):format(t.timestamp), t.nonce, t.encrypt))
    assert.same({ errcode = 4, errmsg = "verification code wrong" }, cjson.decode(inner))
    status = push({ event_type = "unbind" }, { device_sn = "Cb01" })
    assert.equal(200, status)
    assert.equal("Cb01", unbound)
    -- a forged body is refused
    local _, body2 = nil, select(1, mc:push_body("{}", "wecom_json", "1", "2"))
    status = handler("POST", { msg_signature = ("0"):rep(40), timestamp = tostring(os.time()), nonce = "2" }, {}, body2)
    assert.equal(403, status)
  end)
end)

--- WeCom smart-hardware cloud access, /cgi-bin/openhw/ (developer.work.weixin.qq.com/document/path/91342):
-- model token from a model_ticket, device secret from a one-time auth_code,
-- device token, register_sn / unregister_sn, get_device_detail, device status,
-- member paging and lookup, checkin / access / temperature reports, and the
-- results of the device commands (firmware upgrade, recognition info, remote
-- door opening). Binding, unbinding, member changes, device commands and the
-- verify_device query are driven through the control API; the pushes
-- themselves live in callbacks.lua.
local crypto = require "wxhw.crypto"
local util = require "wxhw.emulator.util"

local M = {}
local W = {}
W.__index = W

local TICKET_EVERY, TICKET_TTL = 600, 1800
local AUTH_CODE_TTL = 600
local PER_USER_HOURLY = 10

local ERR = {
  [40058] = "invalid parameter", [40085] = "invalid model_ticket", [40029] = "invalid auth_code",
}
local function err(emu, code, msg) return emu:err(code, msg or ERR[code]) end

local function st(emu) return emu.state.openhw end

--- Issue a model_ticket (pushed every 10 minutes; valid 30).
function W:new_ticket()
  local emu = self.emu
  local o = st(emu)
  local t = "MT" .. emu:next_seq() .. emu.rng:alnum(60)
  o.tickets = o.tickets or {}
  o.tickets[t] = { issued = emu:now(), expires = emu:now() + TICKET_TTL }
  o.latest_ticket, o.latest_issued = t, emu:now()
  emu:touch()
  return t
end

--- Called every second and after clock moves: a new ticket each 10 minutes.
function W:tick()
  local emu = self.emu
  local o = st(emu)
  if o.latest_issued and emu:now() - o.latest_issued < TICKET_EVERY then return end
  local t = self:new_ticket()
  if emu.callbacks then emu.callbacks:openhw_event("model_ticket", { model_ticket = t }) end
  for k, v in pairs(o.tickets) do if v.expires < emu:now() then o.tickets[k] = nil end end
end

local function device(emu, sn)
  if type(sn) ~= "string" then return nil end
  local o = st(emu)
  o.devices = o.devices or {}
  return o.devices[sn:lower()]
end

-- The body and token record of a request wxhw.emulator.validate has already
-- checked against contract/wecom.lua (token kind, field types and limits).
local function body_with(_, req)
  return req.json, req.auth
end

------------------------------------------------------------------ credentials
local function get_model_token(emu, req)
  local c = emu.credentials.openhw
  local b = req.json
  if b.model_id ~= c.model_id then return err(emu, 40058, "invalid model_id") end
  if b.model_secret ~= c.model_secret then return err(emu, 40001, "invalid model_secret") end
  local t = (st(emu).tickets or {})[b.model_ticket]
  if not t or emu:now() >= t.expires then return err(emu, 40085) end
  emu:count("token_fetches", "model:" .. c.model_id)
  local tok = emu.tokens:issue("model", c.model_id, 7200)
  return emu:json({ model_access_token = tok, expires_in = 7200 })
end

local function get_device_secret(emu, req)
  local b, e = body_with(emu, req, "model_access_token", "model")
  if not b then return e end
  local code = b.auth_code
  local o = st(emu)
  local a = (o.auth_codes or {})[code]
  if not a or a.used or emu:now() >= a.expires then return err(emu, 40029) end
  a.used = true
  local d = device(emu, a.device_sn)
  if not d or d.bind_status ~= 1 then return err(emu, 40029, "invalid auth_code hint: device not bound") end
  d.device_secret = "DS" .. emu:next_seq() .. emu.rng:alnum(60)
  local tok = emu.tokens:issue("device", a.device_sn:lower(), 7200)
  emu:count("token_fetches", "device_secret:" .. a.device_sn)
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok", device_secret = d.device_secret,
    device_access_token = tok, expires_in = 7200 })
end

local function get_device_token(emu, req)
  local b, e = body_with(emu, req, "model_access_token", "model")
  if not b then return e end
  local d = device(emu, b.device_sn)
  if not d then return err(emu, 40058, "invalid device_sn") end
  if not d.device_secret or b.device_secret ~= d.device_secret then
    return err(emu, 40001, "invalid device_secret")
  end
  emu:count("token_fetches", "device:" .. b.device_sn)
  local tok = emu.tokens:issue("device", b.device_sn:lower(), 7200)
  return emu:json({ device_access_token = tok, expires_in = 7200 })
end

------------------------------------------------------------------ devices
local function register_sn(emu, req)
  local b, e = body_with(emu, req, "model_access_token", "model")
  if not b then return e end
  local o = st(emu)
  o.devices = o.devices or {}
  local key = b.device_sn:lower()
  local d = o.devices[key]
  if not d then
    d = { device_sn = b.device_sn, bind_status = 0,
      qr_code = "https://open.work.weixin.qq.com/connect/hardware?hw_code=" .. emu.rng:alnum(32) }
    o.devices[key] = d
    emu:touch()
  end
  return emu:json({ errcode = 0, errmsg = "ok", qr_code = d.qr_code })
end

-- Deletes a registered SN that is not bound (doc 95981: "删除尚未绑定的设备sn").
-- The errcodes for an unknown or a bound SN are undocumented: chosen 40058.
local function unregister_sn(emu, req)
  local b, e = body_with(emu, req, "model_access_token", "model")
  if not b then return e end
  local d = device(emu, b.device_sn)
  if not d then return err(emu, 40058, "invalid device_sn hint: not registered") end
  if d.bind_status == 1 then return err(emu, 40058, "invalid device_sn hint: bound devices cannot be deleted") end
  st(emu).devices[b.device_sn:lower()] = nil
  emu.tokens:invalidate_owner(b.device_sn:lower())
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok" })
end

local function get_device_detail(emu, req)
  local b, e = body_with(emu, req, "model_access_token", "model")
  if not b then return e end
  local d = device(emu, b.device_sn)
  if not d then return err(emu, 40058, "invalid device_sn hint: not registered") end
  local corp = d.bind_status == 1 and { open_corpid = d.auth_corpid, corp_name = "Emulated Corp" } or {}
  return emu:json({ errcode = 0, errmsg = "ok", device_detail = {
    model_name = "Emulated model", default_name = "Emulated device", qr_code = d.qr_code,
    bind_status = d.bind_status, auth_corp_info = corp, bind_corpinfo = corp, remark_name = d.remark_name or "" } })
end

------------------------------------------------------------------ members
function W:members()
  if self._members then return self._members end
  local rng = util.rng(self.emu.seed * 7919 + 17)
  local list = {}
  local rules = { "9:00-18:00 * * 1-5 *", "0:00-23:59 * * * *", "8:00-12:00 * * 1-6 *" }
  for i = 1, self.member_count do
    list[i] = { open_userid = "wo" .. rng:alnum(22), user_name = "成员" .. i,
      user_type = (i % 10 == 0) and 2 or 0,
      pass_rule = { rule_list = util.array{ { id = 1000 + i % 3, rule = rules[i % 3 + 1], effect_time = 1700000000 } } } }
  end
  self._members = list
  self.by_id = {}
  for _, m in ipairs(list) do self.by_id[m.open_userid .. "|" .. m.user_type] = m end
  return list
end

local function device_body(emu, req)
  local b, rec = body_with(emu, req, "device_access_token", "device")
  if not b then return nil, rec end
  local d = device(emu, rec.owner)
  if not d or d.bind_status ~= 1 then return nil, err(emu, 40014, "invalid device_access_token hint: device unbound") end
  return b, rec
end

local function get_userinfo_by_page(emu, req)
  local self = emu.wecom
  local b, e = device_body(emu, req)
  if not b then return e end
  local members = self:members()
  if b.only_perm_version == true then
    return emu:json({ errcode = 0, errmsg = "ok", perm_version = self.perm_version })
  end
  local limit = b.limit or 100
  local offset = 0
  if b.cursor ~= nil and b.cursor ~= "" then
    local o, v = tostring(b.cursor):match("^C(%d+)V(%d+)$")
    if not o then return err(emu, 40058, "invalid cursor") end
    if tonumber(v) ~= self.perm_version then
      return err(emu, 40058, "invalid cursor hint: perm_version changed, start over")
    end
    offset = tonumber(o)
  end
  local items = util.array()
  for i = offset + 1, math.min(offset + limit, #members) do items[#items + 1] = members[i] end
  local nxt = offset + limit < #members and ("C" .. (offset + limit) .. "V" .. self.perm_version) or ""
  return emu:json({ errcode = 0, errmsg = "ok", next_cursor = nxt, perm_version = self.perm_version,
    userinfo = { useritems = items } })
end

local function get_userinfo_by_ids(emu, req)
  local self = emu.wecom
  local b, e = device_body(emu, req)
  if not b then return e end
  self:members()
  local items = util.array()
  for _, u in ipairs(b.user_item) do
    local m = self.by_id[u.open_userid .. "|" .. u.user_type]
    if m then items[#items + 1] = m end
  end
  return emu:json({ errcode = 0, errmsg = "ok", userinfo = { useritems = items } })
end

local function report(field, extra_check)
  return function(emu, req)
    local self = emu.wecom
    local b, e = device_body(emu, req)
    if not b then return e end
    local list = b[field] -- 1-100 well-typed records (contract)
    self:members()
    local fails = util.array()
    local hour = math.floor(emu:now() / 3600)
    for _, r in ipairs(list) do
      local ok = self.by_id[r.open_userid .. "|" .. r.user_type] ~= nil
        and (not extra_check or extra_check(r))
      if ok then
        local k = field .. r.open_userid .. "|" .. hour
        self.hourly[k] = (self.hourly[k] or 0) + 1
        if self.hourly[k] > PER_USER_HOURLY then ok = false end
      end
      if ok then
        self.records[#self.records + 1] = { kind = field, open_userid = r.open_userid,
          user_type = r.user_type, timestamp = r.timestamp, pass_type = r.pass_type, pass_method = r.pass_method,
          temperature = r.temperature, status = r.status }
      else
        fails[#fails + 1] = { open_userid = r.open_userid, user_type = r.user_type, timestamp = r.timestamp }
      end
    end
    if #self.records > 10000 then self.records = { table.unpack(self.records, #self.records - 5000) } end
    return emu:json({ errcode = 0, errmsg = "ok", fail_list = fails })
  end
end

------------------------------------------------------------------ device status and command results
-- Field types, lengths and online_status / type values are the contract's
-- (contract/wecom.lua); the routes below keep the behaviour.

-- report_device_status (doc 95983): online_status 1 online / 2 offline;
-- versions at most 32 bytes (cur_version required: chosen), the description
-- 256; an upgradable version without its description (or the reverse) is
-- ignored, as documented.
local function report_device_status(emu, req)
  local b, rec = device_body(emu, req)
  if not b then return rec end
  local d = device(emu, rec.owner)
  local s = d.status or {}
  s.online_status, s.reported_at = b.online_status, emu:now()
  if b.cur_version and b.cur_version ~= "" then s.cur_version = b.cur_version end
  local up, desc = b.upgradable_version, b.upgradable_version_desc
  if up and up ~= "" and desc and desc ~= "" then s.upgradable_version, s.upgradable_version_desc = up, desc end
  d.status = s
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok" })
end

-- The pending operation `oper_id` of `command_type` on the caller's device.
-- Unknown ids are refused (undocumented: chosen 40058): a result can only
-- answer a command the platform sent.
local function operation(emu, b, rec, command_type)
  local op = (st(emu).opers or {})[b.oper_id]
  if not op or op.owner ~= rec.owner or op.command_type ~= command_type then
    return nil, err(emu, 40058, "invalid oper_id hint: not a " .. command_type .. " operation of this device")
  end
  return op
end

local function finish(emu, op, b, state)
  op.state, op.errcode, op.errmsg, op.reported_at = state, b.errcode, b.errmsg, emu:now()
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok" })
end

-- report_firmware_upgrade_result (doc 95999): errcode 0 with a version other
-- than the one before the upgrade succeeds; 0 with the same version leaves
-- the operation upgrading; non-zero fails it.
local function report_firmware_upgrade_result(emu, req)
  local b, rec = device_body(emu, req)
  if not b then return rec end
  local op, e = operation(emu, b, rec, "update_firmware")
  if not op then return e end
  op.cur_version = b.cur_version
  if b.errcode ~= 0 then return finish(emu, op, b, "failed") end
  if b.cur_version == op.version_before then return finish(emu, op, b, "upgrading") end
  local d = device(emu, rec.owner)
  d.status = d.status or {}
  d.status.cur_version = b.cur_version
  return finish(emu, op, b, "succeeded")
end

-- report_bio_info_result (doc 96000): the outcome of an enter_page command,
-- or, without an oper_id (absent or empty), of an entry made on the device
-- itself, named by open_userid, user_type and bio_info_type.
local function report_bio_info_result(emu, req)
  local b, rec = device_body(emu, req)
  if not b then return rec end
  if b.oper_id == nil or b.oper_id == "" then
    if type(b.open_userid) ~= "string" or b.open_userid == "" or b.user_type == nil or b.bio_info_type == nil then
      return err(emu, 47001, "data format error hint: without an oper_id, open_userid, user_type and bio_info_type are required")
    end
    local self = emu.wecom
    self:members()
    if not self.by_id[b.open_userid .. "|" .. b.user_type] then
      return err(emu, 40058, "invalid open_userid hint: not a member this device serves")
    end
    self.records[#self.records + 1] = { kind = "bio_info", open_userid = b.open_userid, user_type = b.user_type,
      bio_info_type = b.bio_info_type, errcode = b.errcode, errmsg = b.errmsg }
    return emu:json({ errcode = 0, errmsg = "ok" })
  end
  local op, e = operation(emu, b, rec, "enter_page")
  if not op then return e end
  return finish(emu, op, b, b.errcode == 0 and "succeeded" or "failed")
end

-- report_remote_open_result (doc 96048): type remote_open_door or
-- scan_qrcode_open, and it must name the command that issued the oper_id
-- (remote_open_door, or user_scan for a scan).
local OPENED_BY = { remote_open_door = "remote_open_door", scan_qrcode_open = "user_scan" }
local function report_remote_open_result(emu, req)
  local b, rec = device_body(emu, req)
  if not b then return rec end
  local op, e = operation(emu, b, rec, OPENED_BY[b.type])
  if not op then return e end
  return finish(emu, op, b, b.errcode == 0 and "succeeded" or "failed")
end

------------------------------------------------------------------ control
--- Bind a device to an enterprise: issue an auth_code (10 minutes, one-time)
-- and tell the vendor (bind callback); the bind fails if the vendor refuses.
function W:bind(b, done)
  local emu = self.emu
  local d = device(emu, b.device_sn)
  if not d then return done(nil, "device_sn not registered (register_sn first)") end
  if d.bind_status == 1 then return done(nil, "already bound") end
  local o = st(emu)
  o.auth_codes = o.auth_codes or {}
  local code = "AC" .. emu:next_seq() .. emu.rng:alnum(80)
  o.auth_codes[code] = { device_sn = d.device_sn, expires = emu:now() + AUTH_CODE_TTL }
  local corp = b.auth_corpid or emu.credentials.openhw.auth_corpid
  local function settle(ok, why)
    if ok then d.bind_status, d.auth_corpid = 1, corp else o.auth_codes[code] = nil end
    emu:touch()
    done(ok and { ok = true, auth_code = code, device_sn = d.device_sn } or nil, why)
  end
  if emu.callbacks and emu.callbacks:openhw_url() then
    emu.callbacks:openhw_event("bind", { auth_code = code, verif_code = b.verif_code or "" },
      { device_sn = d.device_sn, auth_corpid = corp }, function(reply_ok, why) settle(reply_ok, why) end)
  else
    settle(true)
  end
end

-- What each device command carries (docs 97079, 96011, 96009, 96010); the
-- control body supplies open_userid / user_type / page_type, the emulator
-- the oper_id. exit_page (cancel an entry) is on the same page as enter_page
-- but its body was not readable: chosen to repeat the enter_page fields and
-- carry the oper_id of the entry it cancels.
-- user_scan (doc 97390: a member scanned the device's QR code) carries the
-- scanner's open_userid, user_type (0 member, 1 admin) and the code's state,
-- and is answered encrypted {"online_status": 1|2}; its oper_id is the one a
-- scan_qrcode_open result names (as the direct-access page 95050 says:
-- 门禁开门的oper_id用户扫码事件推送). Its auth_code fields are for printers
-- scanning files: not sent (chosen).
local COMMANDS = { fetch_device_status = {}, update_firmware = { oper = true },
  enter_page = { oper = true, member = true, page = true }, exit_page = { member = true, page = true, cancels = true },
  remote_open_door = { oper = true, member = true }, user_scan = { oper = true, scan = true } }
local COMMAND_NAMES = "fetch_device_status, update_firmware, enter_page, exit_page, remote_open_door, user_scan"

--- Sends a device command to the vendor (1000 ms to answer); done(result | nil, why).
function W:command(b, done)
  local emu = self.emu
  local spec = COMMANDS[b.command_type]
  if not spec then return done(nil, "command_type must be one of " .. COMMAND_NAMES) end
  local d = device(emu, b.device_sn)
  if not d or d.bind_status ~= 1 then return done(nil, "device_sn is not a bound device") end
  local o = st(emu)
  o.opers = o.opers or {}
  local fields, op = {}, nil
  if spec.member then
    self:members()
    local ut = b.user_type or 0
    local uid = b.open_userid or self._members[1].open_userid
    if not self.by_id[tostring(uid) .. "|" .. tostring(ut)] then return done(nil, "open_userid/user_type is not a member") end
    fields.open_userid = uid
    if spec.page then fields.user_type = ut end
  end
  if spec.scan then
    self:members()
    local uid = b.open_userid or self._members[1].open_userid
    if not (self.by_id[tostring(uid) .. "|0"] or self.by_id[tostring(uid) .. "|2"]) then
      return done(nil, "open_userid is not a member")
    end
    local ut = b.user_type or 0
    if ut ~= 0 and ut ~= 1 then return done(nil, "user_type must be 0 (member) or 1 (admin) for user_scan") end
    if b.state ~= nil and type(b.state) ~= "string" then return done(nil, "state must be a string") end
    fields.open_userid, fields.user_type, fields.state = uid, ut, b.state or ""
  end
  if spec.page then
    if b.page_type ~= "fa" and b.page_type ~= "fp" then return done(nil, "page_type must be fa (face) or fp (fingerprint)") end
    fields.page_type = b.page_type
  end
  if b.command_type == "update_firmware" then
    local s = d.status or {}
    if not s.upgradable_version or s.upgradable_version == s.cur_version then
      return done(nil, "no upgrade offered: report_device_status with an upgradable_version first (doc 95999)")
    end
  end
  if spec.cancels then
    local target = o.opers[b.oper_id or ""]
    if not target or target.command_type ~= "enter_page" or target.state ~= "sent" then
      return done(nil, "oper_id must name a pending enter_page")
    end
    fields.oper_id = b.oper_id
  elseif spec.oper then
    -- a given oper_id (e.g. a published sample's) must be new
    if b.oper_id ~= nil and (type(b.oper_id) ~= "string" or b.oper_id == "" or o.opers[b.oper_id]) then
      return done(nil, "oper_id must be a new non-empty string")
    end
    fields.oper_id = b.oper_id or ("OP" .. emu:next_seq() .. emu.rng:alnum(16))
    op = { oper_id = fields.oper_id, owner = d.device_sn:lower(), device_sn = d.device_sn,
      command_type = b.command_type, state = "sending", created = emu:now(),
      version_before = d.status and d.status.cur_version }
    o.opers[op.oper_id] = op
  end
  if b.command_type == "fetch_device_status" then d.status_requested_at = emu:now() end
  local corp = d.auth_corpid
  emu.callbacks:openhw_push("command", b.command_type, fields, { base = { device_sn = d.device_sn, auth_corpid = corp },
      answer = spec.scan and "object" or nil },
    function(ok, why, answer)
      if ok and spec.scan and answer.online_status ~= 1 and answer.online_status ~= 2 then
        ok, why = false, "user_scan's answer must be the encrypted {\"online_status\": 1|2}"
      end
      if op then op.state = ok and "sent" or "refused" end
      if ok and spec.cancels then o.opers[b.oper_id].state = "cancelled" end
      emu:touch()
      done({ ok = ok, reason = why, oper_id = fields.oper_id, command_type = b.command_type,
        online_status = ok and spec.scan and answer.online_status or nil })
    end)
end

--- Asks the vendor whether an SN unknown to WeCom is theirs (doc 96130):
-- the push carries only the SN's MD5 (lower-case hex of the SN as typed,
-- chosen); done({ ok, reason, is_valid, modelid }).
function W:verify_device(b, done)
  local emu = self.emu
  if type(b.device_sn) ~= "string" or b.device_sn == "" then return done(nil, "device_sn (as the user typed it) required") end
  emu.callbacks:openhw_push("event", "verify_device", { device_sn_md5 = crypto.hex(crypto.md5(b.device_sn)) },
    { no_model = true, answer = "object", base = { auth_corpid = b.auth_corpid or emu.credentials.openhw.auth_corpid } },
    function(ok, why, answer)
      if ok and type(answer.is_valid) ~= "boolean" then ok, why = false, "is_valid must be a JSON boolean" end
      if ok and answer.is_valid and (type(answer.modelid) ~= "string" or answer.modelid == "") then
        ok, why = false, "a valid SN's answer must carry its modelid"
      end
      if not ok then return done({ ok = false, reason = why }) end
      done({ ok = true, is_valid = answer.is_valid, modelid = answer.modelid })
    end)
end

function W:unbind(sn)
  local emu = self.emu
  local d = device(emu, sn)
  if not d then return nil, "unknown device_sn" end
  d.bind_status, d.device_secret, d.auth_corpid = 0, nil, nil
  emu.tokens:invalidate_owner(d.device_sn:lower())
  if emu.callbacks then
    emu.callbacks:openhw_event("unbind", {}, { device_sn = d.device_sn, auth_corpid = emu.credentials.openhw.auth_corpid })
  end
  emu:touch()
  return { ok = true }
end

local function control_routes(emu)
  local r = emu.control_routes
  r["GET /__emulator/openhw/model_ticket"] = function()
    local o = st(emu)
    local t = o.latest_ticket and o.tickets and o.tickets[o.latest_ticket]
    if not t or emu:now() >= t.expires then emu.wecom:new_ticket() end
    return { model_ticket = st(emu).latest_ticket }
  end
  -- Asynchronous: the answer waits for the vendor's bind callback reply.
  r["POST /__emulator/openhw/bind"] = function(_, _, b)
    return { defer = function(reply)
      emu.wecom:bind(b, function(res, why)
        reply(res and emu:json(res) or emu:json({ error = why or "bind failed" }, 409))
      end)
    end }
  end
  r["POST /__emulator/openhw/unbind"] = function(_, _, b) return emu.wecom:unbind(b.device_sn) end
  r["POST /__emulator/openhw/members"] = function(_, _, b)
    local self = emu.wecom
    if math.tointeger(b.count) then self.member_count = math.tointeger(b.count); self._members = nil end
    self.perm_version = self.perm_version + 1
    return { ok = true, perm_version = self.perm_version, count = #self:members() }
  end
  r["GET /__emulator/openhw/records"] = function() return { records = util.array(emu.wecom.records) } end
  -- Asynchronous like bind: the answer waits for the vendor's reply.
  local function deferred(method)
    return function(_, _, b)
      return { defer = function(reply)
        emu.wecom[method](emu.wecom, b, function(res, why)
          reply(res and emu:json(res) or emu:json({ error = why }, 409))
        end)
      end }
    end
  end
  r["POST /__emulator/openhw/command"] = deferred("command")
  r["POST /__emulator/openhw/verify_device"] = deferred("verify_device")
  -- Device statuses and command operations, as the WeCom admin would see them.
  r["GET /__emulator/openhw/devices"] = function()
    local out, ops = {}, util.array()
    for _, d in pairs(st(emu).devices or {}) do
      out[d.device_sn] = { bind_status = d.bind_status, status = d.status, status_requested_at = d.status_requested_at }
    end
    for _, op in pairs(st(emu).opers or {}) do ops[#ops + 1] = op end
    table.sort(ops, function(a, b) return a.oper_id < b.oper_id end)
    return { devices = out, operations = ops }
  end
end

function W:reset()
  self.records, self.hourly, self.perm_version = {}, {}, 1
  self.member_count, self._members = self.default_members, nil
end

function M.install(emu)
  local self = setmetatable({ emu = emu, default_members = tonumber(emu.opts.wecom_members) or 450 }, W)
  self:reset()
  emu.state.openhw = emu.state.openhw or {}
  emu:route("/cgi-bin/openhw/get_model_token", get_model_token)
  emu:route("/cgi-bin/openhw/get_device_secret", get_device_secret)
  emu:route("/cgi-bin/openhw/get_device_token", get_device_token)
  emu:route("/cgi-bin/openhw/model/register_sn", register_sn)
  emu:route("/cgi-bin/openhw/model/unregister_sn", unregister_sn)
  emu:route("/cgi-bin/openhw/device/report_device_status", report_device_status)
  emu:route("/cgi-bin/openhw/device/report_firmware_upgrade_result", report_firmware_upgrade_result)
  emu:route("/cgi-bin/openhw/device/report_bio_info_result", report_bio_info_result)
  emu:route("/cgi-bin/openhw/device/report_remote_open_result", report_remote_open_result)
  emu:route("/cgi-bin/openhw/device/get_device_detail", get_device_detail)
  emu:route("/cgi-bin/openhw/device/get_userinfo_by_page", get_userinfo_by_page)
  emu:route("/cgi-bin/openhw/device/get_userinfo_by_ids", get_userinfo_by_ids)
  emu:route("/cgi-bin/openhw/device/report_checkin_data", report("checkin_data"))
  emu:route("/cgi-bin/openhw/device/report_access_data", report("access_data", function(r)
    return ({ [1] = true, [2] = true, [3] = true })[r.pass_type] and
      ({ [1] = true, [2] = true, [3] = true, [4] = true })[r.pass_method] or false
  end))
  -- doc 95986: temperature a string, status 0 normal / 1 fever / 2 too low
  emu:route("/cgi-bin/openhw/device/report_temperature_data", report("temperature_data", function(r)
    return r.temperature ~= "" and (r.status == 0 or r.status == 1 or r.status == 2)
  end))
  control_routes(emu)
  return self
end

return M

--- One WeCom hardware device (openhw device-token APIs,
-- developer.work.weixin.qq.com/document/path/95984 and the pages docs/wecom.md lists):
-- its status, the member list with cursor pagination and lookup by id,
-- attendance / door-access / temperature reports, and the results of the
-- commands WeCom pushed (firmware upgrade, recognition info, remote opening).
-- Made by `wecom:device{ device_sn =, device_secret = }`, which hands it the
-- call to use (no require back into wxhw.wecom).
local errors = require "wxhw.errors"
local paginate = require "wxhw.paginate"

local M = {}
local D = {}
D.__index = D

--- o: call = fn(path, body) -> answer | nil, err (a device-token POST),
-- device_sn, token (its token manager), report_chunk (records per report call).
function M.new(o)
  return setmetatable({ call = o.call, device_sn = o.device_sn, token = o.token,
    report_chunk = o.report_chunk or 100 }, D)
end

function D:__tostring() return "wxhw.wecom device " .. self.device_sn end

function D:_call(path, body) return self.call(path, body) end

--- The members the device may serve: an iterator `for user, err in d:members{...}`.
-- Pages by next_cursor (limit 1-200, default 100); a perm_version change
-- while paging restarts from the first page (no member is yielded twice).
-- o: limit, on_change ("restart" | "error"), max_restarts, on_page.
function D:members(o)
  o = o or {}
  local limit = o.limit or 100
  if type(limit) ~= "number" or limit < 1 or limit > 200 then error("wecom device:members: limit must be 1-200", 2) end
  local last_version
  local p = paginate.new{ style = "cursor", limit = limit,
    fetch = function(req)
      local body = { limit = req.limit }
      local paging = req.cursor and req.cursor ~= ""
      if paging then body.cursor = req.cursor end
      local page, err = self:_call("/cgi-bin/openhw/device/get_userinfo_by_page", body)
      if page then last_version = page.perm_version; return page end
      -- A cursor dies with the permissions it was cut from: if the version
      -- moved, hand the pager an empty page of the new version (it restarts).
      if paging and err.kind == "wx" then
        local v = self:perm_version()
        if v ~= nil and v ~= last_version then
          return { perm_version = v, next_cursor = req.cursor, userinfo = { useritems = {} } }
        end
      end
      return nil, err
    end,
    items = function(page) return type(page.userinfo) == "table" and page.userinfo.useritems or {} end,
    total = false,
    version = function(page) return page.perm_version end,
    on_change = o.on_change or "restart", max_restarts = o.max_restarts,
    key = function(u) return tostring(u.open_userid) .. ":" .. tostring(u.user_type) end,
    on_page = o.on_page }
  return p:iter()
end

--- Just the current perm_version (only_perm_version = true).
function D:perm_version()
  local res, err = self:_call("/cgi-bin/openhw/device/get_userinfo_by_page", { only_perm_version = true })
  if not res then return nil, err end
  return res.perm_version
end

-- Sends records in chunks of 100; returns { sent =, failed = { record ... } }.
-- A whole-call failure stops and returns nil, err (err.sent = records accepted before).
local function report(self, path, field, records, check)
  if type(records) ~= "table" then error("wecom device: records must be a list", 3) end
  for i, r in ipairs(records) do
    local msg = check(r)
    if msg then return errors.fail("input", ("record %d: %s"):format(i, msg), { index = i }) end
  end
  local out = { sent = 0, failed = {} }
  local chunk = self.report_chunk
  for first = 1, #records, chunk do
    local list = {}
    for i = first, math.min(first + chunk - 1, #records) do list[#list + 1] = records[i] end
    local res, err = self:_call(path, { [field] = list })
    if not res then
      err.sent, err.failed = out.sent, out.failed
      return nil, err
    end
    for _, f in ipairs(type(res.fail_list) == "table" and res.fail_list or {}) do out.failed[#out.failed + 1] = f end
    out.sent = out.sent + #list
  end
  return out
end

local function base_check(r)
  if type(r) ~= "table" then return "must be a table" end
  if type(r.open_userid) ~= "string" or r.open_userid == "" then return "open_userid is required" end
  if r.user_type ~= 0 and r.user_type ~= 2 then return "user_type must be 0 (member) or 2 (student)" end
  local t = r.timestamp
  if type(t) ~= "number" or t < 0 or t > 0xffffffff or t % 1 ~= 0 then
    return "timestamp (unix seconds, a uint32) is required"
  end
end

--- report_checkin_data: records { open_userid, user_type, timestamp }.
-- Returns { sent = n, failed = { record ... } } (per-record failures).
function D:report_checkin(records)
  return report(self, "/cgi-bin/openhw/device/report_checkin_data", "checkin_data", records, base_check)
end

--- report_access_data: records also carry pass_type (1 in, 2 out, 3 unknown)
-- and pass_method (1 face, 2 QR code, 3 remote, 4 fingerprint).
function D:report_access(records)
  return report(self, "/cgi-bin/openhw/device/report_access_data", "access_data", records, function(r)
    local m = base_check(r)
    if m then return m end
    if r.pass_type ~= 1 and r.pass_type ~= 2 and r.pass_type ~= 3 then return "pass_type must be 1, 2 or 3" end
    if type(r.pass_method) ~= "number" or r.pass_method < 1 or r.pass_method > 4 then return "pass_method must be 1-4" end
  end)
end

--- get_userinfo_by_ids (doc 96037): users = { { open_userid =, user_type = 0|2 } ... },
-- 1-100 of them → the useritems found (members the device may not serve are left out).
function D:members_by_ids(users)
  if type(users) ~= "table" or #users < 1 or #users > 100 then
    return errors.fail("input", "members_by_ids: 1-100 { open_userid =, user_type = } entries")
  end
  local list = {}
  for i, u in ipairs(users) do
    if type(u) ~= "table" or type(u.open_userid) ~= "string" or u.open_userid == "" then
      return errors.fail("input", ("user %d: open_userid is required"):format(i), { index = i })
    end
    local ut = u.user_type or 0
    if ut ~= 0 and ut ~= 2 then return errors.fail("input", ("user %d: user_type must be 0 or 2"):format(i), { index = i }) end
    list[i] = { open_userid = u.open_userid, user_type = ut }
  end
  local res, err = self:_call("/cgi-bin/openhw/device/get_userinfo_by_ids", { user_item = list })
  if not res then return nil, err end
  return type(res.userinfo) == "table" and res.userinfo.useritems or {}
end

--- report_temperature_data (doc 95986): records also carry temperature (a
-- string such as "36.7") and status (0 normal, 1 fever, 2 too low).
function D:report_temperature(records)
  return report(self, "/cgi-bin/openhw/device/report_temperature_data", "temperature_data", records, function(r)
    local m = base_check(r)
    if m then return m end
    if type(r.temperature) ~= "string" or r.temperature == "" then return "temperature (a string, e.g. \"36.7\") is required" end
    if r.status ~= 0 and r.status ~= 1 and r.status ~= 2 then return "status must be 0 (normal), 1 (fever) or 2 (too low)" end
  end)
end

-- nil when `v` is absent or a string of at most `max` bytes, else why not.
local function too_long(name, v, max)
  if v == nil then return nil end
  if type(v) ~= "string" then return name .. " must be a string" end
  if #v > max then return ("%s is %d bytes (at most %d)"):format(name, #v, max) end
end

-- The same for a string that must be there.
local function required(name, v, max)
  if type(v) ~= "string" or v == "" then return name .. " (a string) is required" end
  return too_long(name, v, max)
end

local function checked_call(self, what, path, body, msg)
  if msg then return errors.fail("input", what .. ": " .. msg) end
  local res, err = self:_call(path, body)
  if not res then return nil, err end
  return true
end

--- report_device_status (doc 95983; every half hour, and at once on a
-- fetch_device_status command). s: online_status (1 online, 2 offline),
-- cur_version (required, <= 32 bytes), upgradable_version (<= 32) with
-- upgradable_version_desc (<= 256): WeCom ignores one without the other,
-- so that is refused here. → true.
function D:report_status(s)
  if type(s) ~= "table" then error("wecom device:report_status: table expected", 2) end
  local msg
  if s.online_status ~= 1 and s.online_status ~= 2 then msg = "online_status must be 1 (online) or 2 (offline)" end
  msg = msg or required("cur_version", s.cur_version, 32) or too_long("upgradable_version", s.upgradable_version, 32)
    or too_long("upgradable_version_desc", s.upgradable_version_desc, 256)
  if not msg and (s.upgradable_version == nil or s.upgradable_version == "")
      ~= (s.upgradable_version_desc == nil or s.upgradable_version_desc == "") then
    msg = "upgradable_version and upgradable_version_desc go together (WeCom ignores one without the other)"
  end
  return checked_call(self, "report_status", "/cgi-bin/openhw/device/report_device_status", {
    online_status = s.online_status, cur_version = s.cur_version, upgradable_version = s.upgradable_version,
    upgradable_version_desc = s.upgradable_version_desc }, msg)
end

-- errcode a non-negative integer, errmsg a string.
local function outcome_error(r)
  local e = r.errcode
  if type(e) ~= "number" or e < 0 or e % 1 ~= 0 or e > 0xffffffff then
    return "errcode must be a non-negative integer (0 = success)"
  end
  if r.errmsg ~= nil and type(r.errmsg) ~= "string" then return "errmsg must be a string" end
end

-- oper_id from the command, and the outcome.
local function result_error(r)
  if type(r) ~= "table" then return "table expected" end
  if type(r.oper_id) ~= "string" or r.oper_id == "" then return "oper_id (from the command) is required" end
  return outcome_error(r)
end

--- report_firmware_upgrade_result (doc 95999) for an update_firmware command:
-- r: oper_id, errcode (0 upgraded, 1 offline, others vendor-defined), errmsg,
-- cur_version (required: the version now running; WeCom only shows success
-- when it differs from the one before). → true.
function D:report_firmware_upgrade_result(r)
  local msg = result_error(r) or required("cur_version", r.cur_version, 32)
  return checked_call(self, "report_firmware_upgrade_result", "/cgi-bin/openhw/device/report_firmware_upgrade_result",
    msg == nil and { oper_id = r.oper_id, errcode = r.errcode, errmsg = r.errmsg or "", cur_version = r.cur_version } or nil, msg)
end

-- Without an oper_id, the user and kind of an entry made on the device itself.
local function bio_entry_error(r)
  if type(r.open_userid) ~= "string" or r.open_userid == "" then
    return "oper_id (from an enter_page command) or open_userid (an entry made on the device) is required"
  end
  if r.user_type ~= 0 and r.user_type ~= 2 then return "user_type must be 0 (member) or 2 (student)" end
  if r.bio_info_type ~= 1 and r.bio_info_type ~= 2 then return "bio_info_type must be 1 (fingerprint) or 2 (face)" end
end

--- report_bio_info_result (doc 96000): r: errcode (0 = recorded, 1 offline,
-- others vendor-defined), errmsg, and either the oper_id of an enter_page
-- command, or, for an entry made on the device itself, open_userid,
-- user_type (0|2) and bio_info_type (1 fingerprint, 2 face). → true.
function D:report_bio_info_result(r)
  if type(r) == "table" and (r.oper_id == nil or r.oper_id == "") then
    local msg = bio_entry_error(r) or outcome_error(r)
    return checked_call(self, "report_bio_info_result", "/cgi-bin/openhw/device/report_bio_info_result",
      msg == nil and { errcode = r.errcode, errmsg = r.errmsg or "", open_userid = r.open_userid,
        user_type = r.user_type, bio_info_type = r.bio_info_type } or nil, msg)
  end
  local msg = result_error(r)
  return checked_call(self, "report_bio_info_result", "/cgi-bin/openhw/device/report_bio_info_result",
    msg == nil and { oper_id = r.oper_id, errcode = r.errcode, errmsg = r.errmsg or "" } or nil, msg)
end

local OPEN_TYPES = { remote_open_door = true, scan_qrcode_open = true }

--- report_remote_open_result (doc 96048) for a remote_open_door command: r:
-- oper_id, type ("remote_open_door" | "scan_qrcode_open", default the
-- former), errcode (0 opened, 1 failed), errmsg. The door pass itself is a
-- separate report_access record. → true.
function D:report_remote_open_result(r)
  local msg = result_error(r)
  local kind = type(r) == "table" and (r.type or "remote_open_door")
  if not msg and not OPEN_TYPES[kind] then msg = "type must be remote_open_door or scan_qrcode_open" end
  return checked_call(self, "report_remote_open_result", "/cgi-bin/openhw/device/report_remote_open_result",
    msg == nil and { oper_id = r.oper_id, type = kind, errcode = r.errcode, errmsg = r.errmsg or "" } or nil, msg)
end

return M

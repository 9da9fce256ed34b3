--- One WeCom hardware device (openhw device-token APIs, wechat-api.md §4.3):
-- the member list with cursor pagination, attendance and door-access reports.
-- Made by `wecom:device{ device_sn =, device_secret = }`.
local errors = require "wxhw.errors"
local paginate = require "wxhw.paginate"

local M = {}
local D = {}
D.__index = D

function M.new(wc, sn, mgr)
  return setmetatable({ wc = wc, device_sn = sn, token = mgr }, D)
end

function D:__tostring() return "wxhw.wecom device " .. self.device_sn end

function D:_call(path, body)
  return require("wxhw.wecom")._call(self.wc.client, self.token, "device_access_token", path, body)
end

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
  local chunk = require("wxhw.wecom").REPORT_CHUNK
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
  if type(r.timestamp) ~= "number" then return "timestamp (unix seconds) is required" end
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

return M

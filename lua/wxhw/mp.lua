--- Mini Program hardware-device APIs
-- (developers.weixin.qq.com/miniprogram/dev/server/API/hardware-device/): sn
-- tickets, device subscribe messages, device groups and the server-initiated
-- VoIP call. Every call uses the Mini Program access token.
--
--   local mp = wxhw.mp.new(client)          -- client: wxhw.client with an MP token_provider
--   local ticket, err = mp:sn_ticket{ sn = "SN001", model_id = "..." }
--   local g = mp:group_create{ model_id = "...", group_name = "Building A" }
--   local res = mp:group_add{ group_id = g, devices = { { model_id =, sn = } }, force_add = false }
--   -- res.added = { sn ... }, res.failed = { { sn =, model_id =, errcode =, errmsg = } }
-- See docs/mp.md.
local errors = require "wxhw.errors"

local M = {}

M.SN_MAX = 128
M.GROUP_LIMIT, M.GROUP_EXPANDED = 50, 200
M.LANGS = { zh_CN = true, en_US = true, zh_HK = true, zh_TW = true }
M.STATES = { developer = true, trial = true, formal = true }

--- Per-device errcodes of the group APIs and getsnticket (their pages under
-- developers.weixin.qq.com/miniprogram/dev/server/API/hardware-device/).
M.ERRCODES = {
  [9800001] = "sn longer than 128 bytes", [9800002] = "sn contains illegal characters",
  [9800003] = "model_id check failed", [9800006] = "model_id and sn do not match the subscription",
  [9800012] = "group_name must be 1-32 bytes", [9800013] = "invalid group_id",
  [9800014] = "device type does not match the group", [9800015] = "device already in a group",
  [9800016] = "group is full", [9800017] = "device not in the group (removedevice)",
}
--- removedevice's per-device answer for a device the group does not hold.
M.NOT_IN_GROUP = 9800017

--- Mini Program sn rules: 1-128 bytes of [0-9A-Za-z_-]. Returns nil when the
-- sn is fine, else a message and the errcode WeChat would answer.
function M.sn_error(sn)
  if type(sn) ~= "string" or sn == "" then return "sn is required", 47001 end
  if #sn > M.SN_MAX then return ("sn is %d bytes (at most 128)"):format(#sn), 9800001 end
  local bad = sn:find("[^%w_%-]")
  if bad then
    return ('sn has an illegal character "%s" at byte %d (allowed: 0-9 A-Z a-z _ -)'):format(errors.char_at(sn, bad), bad), 9800002
  end
end

local MP = {}
MP.__index = MP

function M.new(client, opts)
  if type(client) ~= "table" or type(client.call) ~= "function" then
    error("wxhw.mp.new: a wxhw.client is required", 2)
  end
  opts = opts or {}
  return setmetatable({ client = client, model_id = opts.model_id }, MP)
end

function MP:__tostring() return "wxhw.mp (Mini Program hardware-device APIs)" end

local function input_error(msg, fields) return errors.fail("input", msg, fields) end

local function check_sn(sn)
  local msg, code = M.sn_error(sn)
  if msg then return input_error(msg, { errcode = code, sn = type(sn) == "string" and sn or nil }) end
  return true
end

function MP:_post(path, body)
  return self.client:call{ product = "mp", method = "POST", path = path, json = body, token = true }
end

local function need_string(v, name, fn)
  if type(v) ~= "string" or v == "" then error(("wxhw.mp.%s: %s must be a non-empty string"):format(fn, name), 3) end
end

--- POST /wxa/getsnticket. The ticket is valid for 5 minutes.
function MP:sn_ticket(o)
  if type(o) ~= "table" then error("wxhw.mp.sn_ticket: { sn =, model_id = } expected", 2) end
  local model_id = o.model_id or self.model_id
  need_string(model_id, "model_id", "sn_ticket")
  local ok, err = check_sn(o.sn)
  if not ok then return nil, err end
  local res
  res, err = self:_post("/wxa/getsnticket", { sn = o.sn, model_id = model_id })
  if not res then return nil, err end
  -- the page's own example answer has no sn_ticket: that is no ticket
  if type(res.sn_ticket) ~= "string" or res.sn_ticket == "" then
    return errors.fail("wx", "getsnticket answered without an sn_ticket", { response = res })
  end
  return res.sn_ticket, res
end

--- POST /cgi-bin/message/device/subscribe/send. o: template_id, sn, model_id,
-- to_openid_list (or openid), data ({ key = value | { value = } }), page,
-- lang, miniprogram_state. Sends both modelId and model_id (the docs and
-- working requests disagree:
-- developers.weixin.qq.com/miniprogram/dev/server/API/hardware-device/api_sendhardwaredevicemessage).
function MP:send_device_message(o)
  if type(o) ~= "table" then error("wxhw.mp.send_device_message: options table expected", 2) end
  need_string(o.template_id, "template_id", "send_device_message")
  local model_id = o.model_id or self.model_id
  need_string(model_id, "model_id", "send_device_message")
  local ok, err = check_sn(o.sn)
  if not ok then return nil, err end
  local to = o.to_openid_list or (o.openid and { o.openid })
  if type(to) ~= "table" or #to == 0 then return input_error("to_openid_list needs at least one openid") end
  if type(o.data) ~= "table" then return input_error("data must be a table of template values") end
  local data = {}
  for k, v in pairs(o.data) do
    if type(v) == "table" then data[k] = v else data[k] = { value = tostring(v) } end
  end
  local lang = o.lang or "zh_CN"
  if not M.LANGS[lang] then return input_error("lang must be zh_CN, en_US, zh_HK or zh_TW (got " .. tostring(lang) .. ")") end
  local state = o.miniprogram_state or "formal"
  if not M.STATES[state] then
    return input_error("miniprogram_state must be developer, trial or formal (got " .. tostring(state) .. ")")
  end
  local res
  res, err = self:_post("/cgi-bin/message/device/subscribe/send", {
    template_id = o.template_id, sn = o.sn, modelId = model_id, model_id = model_id,
    to_openid_list = to, page = o.page or "", data = data, lang = lang, miniprogram_state = state })
  if not res then return nil, err end
  return true, res
end

local function group_name_ok(name)
  return type(name) == "string" and #name >= 1 and #name <= 32
end

--- POST /wxa/business/group/createid → group_id. Store the id: WeChat keeps no list.
function MP:group_create(o)
  if type(o) ~= "table" then error("wxhw.mp.group_create: { model_id =, group_name = } expected", 2) end
  local model_id = o.model_id or self.model_id
  need_string(model_id, "model_id", "group_create")
  if not group_name_ok(o.group_name) then
    return input_error("group_name must be 1-32 bytes (it cannot be changed later)", { errcode = 9800012 })
  end
  local res, err = self:_post("/wxa/business/group/createid", { model_id = model_id, group_name = o.group_name })
  if not res then return nil, err end
  return res.group_id, res
end

--- POST /wxa/business/group/getinfo → { group_name, model_id, model_type, device_list }.
function MP:group_info(group_id)
  need_string(group_id, "group_id", "group_info")
  local res, err = self:_post("/wxa/business/group/getinfo", { group_id = group_id })
  if not res then return nil, err end
  if type(res.device_list) ~= "table" then res.device_list = {} end
  return res
end

local function device_list(self, devices, fn)
  if type(devices) ~= "table" or #devices == 0 then error("wxhw.mp." .. fn .. ": devices must be a non-empty list", 3) end
  local list = {}
  for i, d in ipairs(devices) do
    if type(d) == "string" then d = { sn = d } end
    local model_id = d.model_id or self.model_id
    need_string(model_id, "model_id", fn)
    local ok, err = check_sn(d.sn)
    if not ok then
      err.message = ("device %d: %s"):format(i, err.message)
      return nil, err
    end
    list[i] = { model_id = model_id, sn = d.sn }
  end
  return list
end

-- Splits a per-device answer into added (sn list) and failed (with errcodes).
local function per_device(res, sent)
  local out = { added = {}, failed = {}, response = res }
  local by_sn = {}
  for _, d in ipairs(type(res.device_list) == "table" and res.device_list or {}) do
    if type(d) == "table" and d.sn then by_sn[d.sn] = d end
  end
  for _, d in ipairs(sent) do
    local r = by_sn[d.sn]
    local code = r and tonumber(r.errcode) or 0
    code = math.floor(code)
    if code == 0 then
      out.added[#out.added + 1] = d.sn
    else
      out.failed[#out.failed + 1] = { sn = d.sn, model_id = d.model_id, errcode = code,
        errmsg = M.ERRCODES[code] or "error" }
    end
  end
  return out
end

--- POST /wxa/business/group/adddevice. o: group_id, devices ({sn, model_id}
-- or sn strings), force_add. At most `limit` (50, or 200 after expand)
-- devices per call. Returns { added = {sn...}, failed = {{sn, errcode, errmsg}} }.
function MP:group_add(o)
  if type(o) ~= "table" then error("wxhw.mp.group_add: options table expected", 2) end
  need_string(o.group_id, "group_id", "group_add")
  local list, err = device_list(self, o.devices, "group_add")
  if not list then return nil, err end
  local limit = o.limit or M.GROUP_EXPANDED
  if #list > limit then
    return input_error(("%d devices in one call; a group holds at most %d (%d after expand)"):format(
      #list, limit, M.GROUP_EXPANDED), { errcode = 9800016 })
  end
  local res
  res, err = self:_post("/wxa/business/group/adddevice",
    { group_id = o.group_id, device_list = list, force_add = o.force_add and true or false })
  if not res then return nil, err end
  return per_device(res, list)
end

--- POST /wxa/business/group/removedevice (body as adddevice, an assumption:
-- developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/hardware-device/removeIotGroupDevice.html).
-- Returns { removed = {sn...}, failed = {{sn, errcode, errmsg}}, not_in_group =
-- {sn...} }: a device the group does not hold fails with 9800017 (documented),
-- and is listed in not_in_group too, for callers to whom that is done.
function MP:group_remove(o)
  if type(o) ~= "table" then error("wxhw.mp.group_remove: options table expected", 2) end
  need_string(o.group_id, "group_id", "group_remove")
  local list, err = device_list(self, o.devices, "group_remove")
  if not list then return nil, err end
  local res
  res, err = self:_post("/wxa/business/group/removedevice", { group_id = o.group_id, device_list = list })
  if not res then return nil, err end
  local out = per_device(res, list)
  out.removed, out.added, out.not_in_group = out.added, nil, {}
  for _, f in ipairs(out.failed) do
    if f.errcode == M.NOT_IN_GROUP then out.not_in_group[#out.not_in_group + 1] = f.sn end
  end
  return out
end

--- POST /wxa/business/group/expand: raise a group to 200 devices. The name
-- must be a concrete place (province_name, city_name required).
function MP:group_expand(o)
  if type(o) ~= "table" then error("wxhw.mp.group_expand: options table expected", 2) end
  need_string(o.group_id, "group_id", "group_expand")
  if type(o.province_name) ~= "string" or type(o.city_name) ~= "string" then
    return input_error("group_expand needs province_name and city_name")
  end
  local res, err = self:_post("/wxa/business/group/expand", { group_id = o.group_id,
    max_device_count = M.GROUP_EXPANDED, province_name = o.province_name, city_name = o.city_name })
  if not res then return nil, err end
  return true, res
end

--- POST /wxa/business/iot/voip/call (named in cloudvoip_server.h, cloud-server-sdk.html;
-- no official page: the schema is from third-party code, the Ezviz server demo).
-- o: sn, model_id, openid, room_type ("video"|"voice"), listener_name,
-- version_type (0 formal, 1 developer, 2 trial), query, caller_camera_status,
-- listener_camera_status, payload. Returns the room id (or true), response.
function MP:voip_call(o)
  if type(o) ~= "table" then error("wxhw.mp.voip_call: options table expected", 2) end
  local model_id = o.model_id or self.model_id
  need_string(model_id, "model_id", "voip_call")
  need_string(o.openid, "openid", "voip_call")
  local ok, err = check_sn(o.sn)
  if not ok then return nil, err end
  local room = o.room_type or "video"
  if room ~= "video" and room ~= "voice" then return input_error("room_type must be video or voice") end
  local body = { model_id = model_id, sn = o.sn, openid = o.openid, room_type = room }
  for _, k in ipairs{ "listener_name", "version_type", "query", "caller_camera_status",
                      "listener_camera_status", "payload" } do
    body[k] = o[k]
  end
  local res
  res, err = self:_post("/wxa/business/iot/voip/call", body)
  if not res then return nil, err end
  return res.roomid or true, res
end

return M

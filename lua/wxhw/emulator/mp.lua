--- Mini Program hardware-device APIs
-- (developers.weixin.qq.com/miniprogram/dev/server/API/hardware-device/): getsnticket,
-- device subscribe messages, device groups, and the server-initiated VoIP call.
-- What a user does on the phone (subscribe, authorise VoIP) is simulated
-- through the control API.
local util = require "wxhw.emulator.util"
local validate = require "wxhw.emulator.validate"
local contract = require "wxhw.emulator.contract.mp"

local M = {}
local MP = {}
MP.__index = MP

local TICKET_TTL = 300
local GROUP_DEFAULT, GROUP_EXPANDED = 50, 200

--- The contract's sn rule for one device of a group call: errcode or nil.
local function sn_error(sn)
  local kind, _, spec = validate.fields({ sn = sn }, { contract.SN })
  return kind and validate.errcode({}, spec, kind) or nil
end
M.sn_error = sn_error

-- errmsgs: the meanings in the contract (contract/mp.lua).
local ERR = {}
for _, e in ipairs(contract) do
  for code, meaning in pairs(e.errcodes) do ERR[code] = ERR[code] or validate.errmsg(meaning) end
end

local function err(emu, code, msg) return emu:err(code, msg or ERR[code]) end

function MP:model(model_id)
  return type(model_id) == "string" and self.models[model_id] or nil
end

-- Routes run after wxhw.emulator.validate checked the token and the body's
-- fields against the contract (contract/mp.lua): only behaviour is left here.
local function with_token(fn)
  return function(emu, req) return fn(emu, emu.mp, req.json, req) end
end

------------------------------------------------------------------ getsnticket
local function getsnticket(emu, self, b)
  if not self:model(b.model_id) then return err(emu, 9800003) end
  local ticket = "SNT" .. emu:next_seq() .. "x" .. emu.rng:token(32)
  emu.state.snticket[ticket] = { sn = b.sn, model_id = b.model_id, expires = emu:now() + TICKET_TTL }
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok", sn_ticket = ticket })
end

--- Is the ticket valid for (sn, model_id) at emulator time? Returns rec or nil, reason.
function MP:check_ticket(ticket, sn, model_id)
  local t = type(ticket) == "string" and self.emu.state.snticket[ticket]
  if not t then return nil, "unknown sn_ticket" end
  if self.emu:now() >= t.expires then return nil, "sn_ticket expired" end
  if (sn and t.sn ~= sn) or (model_id and t.model_id ~= model_id) then
    return nil, "sn_ticket was issued for another sn/model_id"
  end
  return t
end

------------------------------------------------------------------ messages
local function subscribe_send(emu, self, b)
  local model_id = b.modelId or b.model_id
  if not self:model(model_id) then return err(emu, 9800003) end
  for _, openid in ipairs(b.to_openid_list) do
    local key = openid .. "|" .. b.sn .. "|" .. model_id .. "|" .. b.template_id
    if not self.subscriptions[key] then return err(emu, 9800006) end
  end
  local sent = self.sent
  sent[#sent + 1] = { template_id = b.template_id, sn = b.sn, model_id = model_id,
    to_openid_list = b.to_openid_list, data = b.data, page = b.page, time = emu:now() }
  if #sent > 1000 then table.remove(sent, 1) end
  return emu:json({ errcode = 0, errmsg = "ok" })
end

------------------------------------------------------------------ groups
local function group(emu, id)
  return type(id) == "string" and emu.state.groups[id] or nil
end

local function createid(emu, self, b)
  local m = self:model(b.model_id)
  if not m then return err(emu, 9800003) end
  local id = "emugroup" .. emu:next_seq() .. emu.rng:alnum(12)
  emu.state.groups[id] = { group_name = b.group_name, model_id = b.model_id, model_type = m.model_type,
    max = GROUP_DEFAULT, devices = {} }
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok", group_id = id })
end

local function getinfo(emu, _, b)
  local g = group(emu, b.group_id)
  if not g then return err(emu, 9800013) end
  local list = util.array()
  for i, d in ipairs(g.devices) do list[i] = { model_id = d.model_id, sn = d.sn } end
  return emu:json({ errcode = 0, errmsg = "ok", group_name = g.group_name, model_id = g.model_id,
    model_type = g.model_type, device_list = list })
end

local function index_of(g, key)
  for i, d in ipairs(g.devices) do if d.model_id .. "|" .. d.sn == key then return i end end
end

local function adddevice(emu, self, b)
  local g = group(emu, b.group_id)
  if not g then return err(emu, 9800013) end
  local out = util.array()
  for i, d in ipairs(b.device_list) do
    local code = sn_error(d.sn) or (not self:model(d.model_id) and 9800003) or nil
    local key = tostring(d.model_id) .. "|" .. tostring(d.sn)
    if not code and self.models[d.model_id].model_type ~= g.model_type then code = 9800014 end
    if not code then
      local cur = emu.state.group_of[key]
      if cur == b.group_id then code = 9800015
      elseif cur and not b.force_add then code = 9800015
      elseif #g.devices >= g.max then code = 9800016
      else
        if cur then -- force_add: move it out of its old group
          local old = emu.state.groups[cur]
          local j = old and index_of(old, key)
          if j then table.remove(old.devices, j) end
        end
        g.devices[#g.devices + 1] = { model_id = d.model_id, sn = d.sn }
        emu.state.group_of[key] = b.group_id
        code = 0
      end
    end
    out[i] = { model_id = d.model_id, sn = d.sn, errcode = code }
  end
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok", device_list = out })
end

local function removedevice(emu, _, b)
  local g = group(emu, b.group_id)
  if not g then return err(emu, 9800013) end
  local out = util.array()
  for i, d in ipairs(b.device_list) do
    local code = sn_error(d.sn) or 0
    if code == 0 then
      local key = tostring(d.model_id) .. "|" .. d.sn
      local j = index_of(g, key)
      -- a device not in the group: 9800017 该设备不属于设备组 (removeIotGroupDevice)
      if j then table.remove(g.devices, j); emu.state.group_of[key] = nil
      else code = 9800017 end
    end
    out[i] = { model_id = d.model_id, sn = d.sn, errcode = code }
  end
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok", device_list = out })
end

local function expand(emu, _, b)
  local g = group(emu, b.group_id)
  if not g then return err(emu, 9800013) end
  g.max = GROUP_EXPANDED
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok", group_id = b.group_id })
end

------------------------------------------------------------------ VoIP call
local function voip_call(emu, self, b, req)
  if not self:model(b.model_id) then return err(emu, 9800003) end
  if not self.voip_auth[b.openid .. "|" .. b.sn .. "|" .. b.model_id] then return err(emu, 9800010) end
  local appid = req.auth.owner
  local room = "wxf830863afde621ebWmpfVoip" .. emu:next_seq() .. emu.rng:int(100000000, 999999999)
  local call = { RoomId = room, SessionKey = emu.rng:alnum(32), ServerToken = emu.rng:alnum(44),
    Payload = b.payload or "", ModelId = b.model_id, Sn = b.sn, openid = b.openid, appid = appid }
  self.calls[#self.calls + 1] = call
  if #self.calls > 1000 then table.remove(self.calls, 1) end
  if emu.callbacks then emu.callbacks:voip_notify(call) end
  return emu:json({ errcode = 0, errmsg = "ok", roomid = room })
end

------------------------------------------------------------------ control
-- A user action on a device (subscribe, authorise): the body names the user
-- and the device, and an snTicket, when given, must be valid for it.
local function user_device(self, b, need)
  if type(b.openid) ~= "string" or type(b.sn) ~= "string" or type(b.model_id) ~= "string" then
    return nil, need
  end
  if b.sn_ticket then return self:check_ticket(b.sn_ticket, b.sn, b.model_id) end
  return true
end

local function control_routes(emu)
  local r = emu.control_routes
  r["POST /__emulator/mp/models"] = function(_, _, b)
    if type(b.model_id) ~= "string" then return nil, "need model_id" end
    emu.mp.models[b.model_id] = { model_type = b.model_type or "设备" }
    return { ok = true }
  end
  -- The user taps "subscribe" (wx.requestSubscribeDeviceMessage).
  r["POST /__emulator/mp/subscribe"] = function(_, _, b)
    local self = emu.mp
    local ok, why = user_device(self, b, "need openid, sn, model_id, template_id (or template_ids)")
    if not ok then return nil, why end
    local ids = b.template_ids or { b.template_id }
    if #ids == 0 or #ids > 3 then return nil, "1-3 template ids" end
    for _, t in ipairs(ids) do
      self.subscriptions[b.openid .. "|" .. b.sn .. "|" .. b.model_id .. "|" .. t] = true
    end
    return { ok = true }
  end
  -- The user accepts wx.requestDeviceVoIP for a device.
  r["POST /__emulator/mp/voip_authorize"] = function(_, _, b)
    local self = emu.mp
    local ok, why = user_device(self, b, "need openid, sn, model_id")
    if not ok then return nil, why end
    self.voip_auth[b.openid .. "|" .. b.sn .. "|" .. b.model_id] = b.revoke ~= true or nil
    return { ok = true }
  end
  r["GET /__emulator/mp/snticket"] = function(_, req)
    local t, why = emu.mp:check_ticket(req.q.ticket, req.q.sn, req.q.model_id)
    if not t then return { valid = false, reason = why } end
    return { valid = true, sn = t.sn, model_id = t.model_id, expires_in = t.expires - emu:now() }
  end
  r["GET /__emulator/mp/messages"] = function() return { messages = util.array(emu.mp.sent) } end
  r["GET /__emulator/mp/calls"] = function() return { calls = util.array(emu.mp.calls) } end
end

-- Forget expired tickets once a minute so long runs stay small.
function MP:tick()
  self.ticks = (self.ticks or 0) + 1
  if self.ticks % 60 ~= 0 then return end
  local now, st = self.emu:now(), self.emu.state
  for k, t in pairs(st.snticket) do if t.expires < now then st.snticket[k] = nil end end
  for k, t in pairs(st.push_tokens) do if t.expires < now - 86400 then st.push_tokens[k] = nil end end
end

function MP:reset()
  self.subscriptions, self.voip_auth, self.sent, self.calls = {}, {}, {}, {}
end

function M.install(emu)
  local c = emu.credentials.mp
  local self = setmetatable({ emu = emu, models = {
    [c.model_id] = { model_type = c.model_type },
    [c.other_model_id] = { model_type = c.other_model_type },
  } }, MP)
  self:reset()
  emu:route("/wxa/getsnticket", with_token(getsnticket))
  emu:route("/cgi-bin/message/device/subscribe/send", with_token(subscribe_send))
  emu:route("/wxa/business/group/createid", with_token(createid))
  emu:route("/wxa/business/group/getinfo", with_token(getinfo))
  emu:route("/wxa/business/group/adddevice", with_token(adddevice))
  emu:route("/wxa/business/group/removedevice", with_token(removedevice))
  emu:route("/wxa/business/group/expand", with_token(expand))
  emu:route("/wxa/business/iot/voip/call", with_token(voip_call))
  control_routes(emu)
  return self
end

return M

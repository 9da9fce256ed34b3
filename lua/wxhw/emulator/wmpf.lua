--- WMPF runtime backend (seed 002, wechat-api.md §2.5): createproduct,
-- registerpubkey (P-256 keys, key_version), adddevice, bindwxaapp,
-- pushappmsg. The device side (push tokens, ActivateDevice signature check)
-- is reachable through the control API so provisioning can be verified end to end.
local util = require "wxhw.emulator.util"
local crypto = require "wxhw.crypto"

local M = {}
local W = {}
W.__index = W

local APP_ONLY = { app = true }
local APP_OR_MP = { app = true, mp = true }
local PUSH_LIMIT = 5 * 1024
-- Product ids are `int` on the device (ActivateDevice.productId, read with
-- optInt by the official doc and demo): realistic ids fit in 32 bits, like
-- the addDevice page's 100000 and the demo's 6365.
local PRODUCT_BASE = 100000
local INT32_MAX = 2147483647

local function product_key(id)
  local n = math.tointeger(id)
  if not n and type(id) == "string" and id:match("^%d+$") then n = math.tointeger(tonumber(id)) end
  return n and tostring(n) or nil, n
end

local function handler(kinds, fn)
  return function(emu, req)
    local rec, e = emu.tokens:check(req.q.access_token)
    if not rec then return emu:err(e) end
    if not kinds[rec.kind] then return emu:err(48001, "api unauthorized hint: use the mobile app (hostAppId) access_token") end
    local b, e2 = emu:body_json(req)
    if not b then return e2 end
    return fn(emu, emu.wmpf, b, rec)
  end
end

local function nonempty(s, max) return type(s) == "string" and s ~= "" and #s <= (max or 256) end

local function product_of(emu, rec, id)
  local key, n = product_key(id)
  if not key then return nil, emu:err(47001, "data format error hint: product_id must be a number") end
  local p = emu.state.products[key]
  if not p then return nil, emu:err(47001, "data format error hint: unknown product_id " .. key) end
  if p.host_appid ~= rec.owner then return nil, emu:err(50093, "hostappid error hint: product belongs to another app") end
  return p, n
end

local function createproduct(emu, _, b, rec)
  for _, k in ipairs{ "english_product_name", "chinese_product_name", "device_default_name" } do
    if not nonempty(b[k], 128) then return emu:err(47001, "data format error hint: " .. k) end
  end
  local id = PRODUCT_BASE + emu:next_seq()
  if id > INT32_MAX then return emu:err(-1, "system error hint: product ids exhausted (32-bit)") end
  emu.state.products[tostring(id)] = { product_id = id, host_appid = rec.owner,
    english_product_name = b.english_product_name, chinese_product_name = b.chinese_product_name,
    device_default_name = b.device_default_name, keys = {}, apps = {}, devices = {} }
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok", product_id = id })
end

local function registerpubkey(emu, _, b, rec)
  local p, e = product_of(emu, rec, b.product_id)
  if not p then return e end
  if type(b.pubkey) ~= "string" then return emu:err(47001, "data format error hint: pubkey") end
  local pub = crypto.public_key(b.pubkey)
  if not pub or pub:type() ~= "ec" or pub:bits() ~= 256 then
    return emu:err(47001, "data format error hint: pubkey must be a PEM P-256 (prime256v1) public key")
  end
  p.keys[#p.keys + 1] = pub:pem()
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok", key_version = #p.keys })
end

local function adddevice(emu, _, b, rec)
  local p, e = product_of(emu, rec, b.product_id)
  if not p then return e end
  local list = b.device_id_list
  if type(list) ~= "table" or #list == 0 or #list > 10000 then
    return emu:err(47001, "data format error hint: device_id_list (1-10000 ids)")
  end
  for _, d in ipairs(list) do
    if not nonempty(d, 128) then return emu:err(47001, "data format error hint: device ids are non-empty strings") end
  end
  -- required by the addDevice doc, which documents no errcode for its
  -- absence: 47001 (chosen, docs/emulator.md)
  if not nonempty(b.model_name) then return emu:err(47001, "data format error hint: model_name (required string)") end
  for _, d in ipairs(list) do
    if not p.devices[d] then p.devices[d] = { added = emu:now(), model_name = b.model_name } end
  end
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok" })
end

local function bindwxaapp(emu, _, b, rec)
  local p, e = product_of(emu, rec, b.product_id)
  if not p then return e end
  local app = type(b.appid) == "string" and emu.state.apps[b.appid]
  if not app or app.kind ~= "mp" then return emu:err(40013, "invalid appid hint: not a Mini Program") end
  p.apps[b.appid] = true
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok" })
end

local function pushappmsg(emu, self, b, rec)
  if type(b.msg) ~= "string" or type(b.push_token) ~= "string" or b.push_token == "" then
    return emu:err(40101, "invalid parameter hint: msg and push_token are required strings")
  end
  if #b.msg > PUSH_LIMIT then return emu:err(45002, "content size out of limit (5 KB)") end
  local t = emu.state.push_tokens[b.push_token]
  if not t or emu:now() >= t.expires then return emu:err(48012) end
  -- Sent as the Mini Program when the device asked with that appid, else as the app.
  if t.appid then
    if rec.owner ~= t.appid then return emu:err(48012, "invalid push token hint: token was issued for another appid") end
  elseif rec.owner ~= t.host_appid then
    return emu:err(48012, "invalid push token hint: token was issued for another app")
  end
  local inbox = self.inbox
  inbox[#inbox + 1] = { product_id = t.product_id, device_id = t.device_id,
    msg = b.msg, appid = t.appid or t.host_appid, time = emu:now() }
  if #inbox > 1000 then table.remove(inbox, 1) end
  return emu:json({ errcode = 0, errmsg = "ok" })
end

--- ActivateDevice: the checks WeChat runs when a WMPF device boots.
function W:activate(b)
  local emu = self.emu
  local key = product_key(b.product_id)
  local p = key and emu.state.products[key]
  if not p then return { errcode = 10001, errmsg = "unknown product_id" } end
  if b.host_appid and b.host_appid ~= p.host_appid then return { errcode = 50093, errmsg = "hostappid error" } end
  if type(b.device_id) ~= "string" or not p.devices[b.device_id] then
    return { errcode = 10002, errmsg = "device not registered with adddevice" }
  end
  local kv = math.tointeger(b.key_version)
  local pem = kv and p.keys[kv]
  if not pem then return { errcode = 10003, errmsg = "unknown key_version" } end
  local sig = type(b.signature) == "string" and not b.signature:find("[\r\n\t ]") and crypto.base64_decode(b.signature)
  local pub = crypto.public_key(pem)
  if not sig or not pub:verify(key .. "_" .. b.device_id, sig) then
    return { errcode = 10014, errmsg = "signature err" }
  end
  return { errcode = 0, errmsg = "ok", product_id = p.product_id, key_version = kv, device_id = b.device_id }
end

local function control_routes(emu)
  local r = emu.control_routes
  r["POST /__emulator/wmpf/activate"] = function(_, _, b) return emu.wmpf:activate(b) end
  -- WMPFDeviceApi.getPushToken(appId?) on a registered device.
  r["POST /__emulator/wmpf/push_token"] = function(_, _, b)
    local key = product_key(b.product_id)
    local p = key and emu.state.products[key]
    if not p then return nil, "unknown product_id" end
    if type(b.device_id) ~= "string" or not p.devices[b.device_id] then return nil, "device not registered" end
    if b.appid and not p.apps[b.appid] then return nil, "appid is not bound to the product (bindwxaapp)" end
    local tok = "PT" .. emu:next_seq() .. emu.rng:alnum(40)
    local exp = emu:now() + (tonumber(b.ttl) or 86400)
    emu.state.push_tokens[tok] = { product_id = p.product_id, device_id = b.device_id, appid = b.appid,
      host_appid = p.host_appid, expires = exp }
    emu:touch()
    return { push_token = tok, expire_timestamp = math.floor(exp * 1000) }
  end
  r["GET /__emulator/wmpf/products"] = function()
    local out = util.array()
    for _, p in pairs(emu.state.products) do
      local n = 0
      for _ in pairs(p.devices) do n = n + 1 end
      local apps = util.array()
      for a in pairs(p.apps) do apps[#apps + 1] = a end
      out[#out + 1] = { product_id = p.product_id, host_appid = p.host_appid, key_versions = #p.keys,
        devices = n, apps = apps, english_product_name = p.english_product_name }
    end
    return { products = out }
  end
  r["GET /__emulator/wmpf/devices"] = function(_, req)
    local p = emu.state.products[req.q.product_id or ""]
    if not p then return nil, "unknown product_id" end
    local out, models, seen = util.array(), util.array(), {}
    for d, rec in pairs(p.devices) do
      out[#out + 1] = d
      if not seen[rec.model_name] then seen[rec.model_name] = true; models[#models + 1] = rec.model_name end
    end
    table.sort(out)
    table.sort(models)
    return { product_id = p.product_id, device_ids = out, model_names = models }
  end
  r["GET /__emulator/wmpf/messages"] = function() return { messages = util.array(emu.wmpf.inbox) } end
end

function W:reset() self.inbox = {} end

function M.install(emu)
  local self = setmetatable({ emu = emu, inbox = {} }, W)
  emu:route("/wxa/business/runtime/createproduct", handler(APP_ONLY, createproduct))
  emu:route("/wxa/business/runtime/registerpubkey", handler(APP_ONLY, registerpubkey))
  emu:route("/wxa/business/runtime/adddevice", handler(APP_ONLY, adddevice))
  emu:route("/wxa/business/runtime/bindwxaapp", handler(APP_ONLY, bindwxaapp))
  emu:route("/wxa/business/runtime/pushappmsg", handler(APP_OR_MP, pushappmsg))
  control_routes(emu)
  return self
end

return M

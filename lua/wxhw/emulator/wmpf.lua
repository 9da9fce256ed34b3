--- WMPF runtime backend (硬件信息管理后台接口; addDevice.html, pushAppMsg.html): createproduct,
-- registerpubkey (P-256 keys, key_version), adddevice, bindwxaapp,
-- pushappmsg. The device side (push tokens, ActivateDevice signature check)
-- is reachable through the control API so provisioning can be verified end to end.
local util = require "wxhw.emulator.util"
local crypto = require "wxhw.crypto"

local M = {}
local W = {}
W.__index = W

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

-- Routes run after wxhw.emulator.validate checked the token (host app:
-- 48001 for another kind) and the body's fields against contract/wmpf.lua.
local function handler(fn)
  return function(emu, req) return fn(emu, emu.wmpf, req.json, req.auth) end
end

local function product_of(emu, rec, id)
  local key, n = product_key(id)
  local p = emu.state.products[key]
  if not p then return nil, emu:err(47001, "data format error hint: unknown product_id " .. key) end
  if p.host_appid ~= rec.owner then return nil, emu:err(50093, "hostappid error hint: product belongs to another app") end
  return p, n
end

local function createproduct(emu, _, b, rec)
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
  for _, d in ipairs(b.device_id_list) do
    if not p.devices[d] then p.devices[d] = { added = emu:now(), model_name = b.model_name } end
  end
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok" })
end

local function bindwxaapp(emu, _, b, rec)
  local p, e = product_of(emu, rec, b.product_id)
  if not p then return e end
  local app = emu.state.apps[b.appid]
  if not app or app.kind ~= "mp" then return emu:err(40013, "invalid appid hint: not a Mini Program") end
  p.apps[b.appid] = true
  emu:touch()
  return emu:json({ errcode = 0, errmsg = "ok" })
end

local function pushappmsg(emu, self, b, rec)
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
  emu:route("/wxa/business/runtime/createproduct", handler(createproduct))
  emu:route("/wxa/business/runtime/registerpubkey", handler(registerpubkey))
  emu:route("/wxa/business/runtime/adddevice", handler(adddevice))
  emu:route("/wxa/business/runtime/bindwxaapp", handler(bindwxaapp))
  emu:route("/wxa/business/runtime/pushappmsg", handler(pushappmsg))
  control_routes(emu)
  return self
end

return M

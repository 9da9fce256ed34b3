--- WeChat Pay APIv3 (sources in contract/pay.lua): every request's Authorization is
-- verified against the merchant's registered key, every response is signed
-- with the platform key (certificate mode or PUB_KEY_ID_ mode), plus
-- /v3/certificates, /v3/iotmanage/devices (20 QPS, 50 000/day, seeded fleet)
-- and /v3/iotmanage/device-inspections/{sn}.
--
-- Pay timestamps (request window, response headers) use the wall clock plus
-- a settable skew, not the emulator clock: advancing the emulator clock to
-- expire tokens must not make every Pay request stale.
local util = require "wxhw.emulator.util"
local keys = require "wxhw.emulator.keys"
local crypto = require "wxhw.crypto"
local socket = require "socket"

local M = {}
local P = {}
P.__index = P

local SCHEME = "WECHATPAY2-SHA256-RSA2048"
local DAILY = 50000 -- rule 20000731; the 20 QPS rule is in the contract (qps)

function P:wall() return math.floor(socket.gettime() + self.skew) end

local function rfc3339(t)
  -- Beijing time, as WeChat Pay prints it
  return os.date("!%Y-%m-%dT%H:%M:%S+08:00", math.floor(t) + 8 * 3600)
end

function P:credentials()
  local k = self.keys
  return {
    mchid = self.mchid, apiv3_key = self.apiv3_key, merchant_serial_no = self.merchant_serial,
    merchant_private_key_path = k.paths.merchant_key, merchant_certificate_path = k.paths.merchant_cert,
    merchant_private_key = k.merchant_key, merchant_certificate = k.merchant_cert,
    platform_serial_no = self.platform_serial, platform_certificate_path = k.paths.platform_cert,
    platform_certificate = self.platform_cert, platform_certificates = self:certificate_pems(),
    public_key_id = self.public_key_id, platform_public_key_path = k.paths.pubkey_public,
    platform_public_key = k.pubkey_public, keys_dir = k.dir, mode = self.mode,
    iot_devices = self.fleet_size,
  }
end

function P:certificate_pems()
  local out = util.array()
  for _, p in ipairs(self.platforms) do out[#out + 1] = p.cert end
  return out
end

--- Make the current platform key/cert (certificate mode) and publish it.
function P:use_platform(key_pem, cert_pem)
  local info = crypto.certificate(cert_pem)
  local p = { key = crypto.private_key(key_pem), cert = cert_pem, serial = info.serial, info = info }
  self.platforms[#self.platforms + 1] = p
  self.platform_key, self.platform_serial, self.platform_cert = p.key, p.serial, cert_pem
end

------------------------------------------------------------------ signing
--- Sign a response (adds the Wechatpay-* headers). Honours the request's
-- fault flags bad_signature / signtest and its Wechatpay-Serial choice.
function P:sign_response(req, res)
  res.headers = res.headers or {}
  local body = res.body or ""
  local ts, nonce = tostring(self:wall()), crypto.nonce(32)
  local want = req.headers["wechatpay-serial"]
  local mode = self.mode
  if want == self.public_key_id then mode = "public_key" elseif want == self.platform_serial then mode = "certificate" end
  local key, serial = self.platform_key, self.platform_serial
  if mode == "public_key" then key, serial = self.pubkey_key, self.public_key_id end
  local f = req.fault or {}
  local sig
  if f.signtest then
    sig = "WECHATPAY/SIGNTEST/" .. crypto.base64_encode(crypto.random_bytes(256))
  elseif f.bad_signature then
    sig = crypto.base64_encode(key:sign(ts .. "\n" .. nonce .. "\n" .. body .. "tampered\n"))
  else
    sig = crypto.base64_encode(key:sign(ts .. "\n" .. nonce .. "\n" .. body .. "\n"))
  end
  res.headers["Wechatpay-Timestamp"] = ts
  res.headers["Wechatpay-Nonce"] = nonce
  res.headers["Wechatpay-Signature"] = sig
  res.headers["Wechatpay-Serial"] = serial
  res.headers["Wechatpay-Signature-Type"] = SCHEME
  res.headers["Request-ID"] = req.request_id or ("emu-" .. crypto.hex(crypto.random_bytes(8)))
  return res
end

function P:answer(req, status, t)
  local res = { status = status, body = t and util.json(t) or "", headers = {} }
  return self:sign_response(req, res)
end

function P:error(req, status, code, message, detail)
  return self:answer(req, status, { code = code, message = message, detail = detail })
end

------------------------------------------------------------------ verification
local function parse_authorization(h)
  if type(h) ~= "string" then return nil, "missing Authorization header" end
  local scheme, rest = h:match("^(%S+)%s+(.*)$")
  if scheme ~= SCHEME then return nil, "Authorization scheme must be " .. SCHEME end
  local t = {}
  for k, v in rest:gmatch('([%w_]+)="([^"]*)"') do t[k] = v end
  for _, k in ipairs{ "mchid", "nonce_str", "timestamp", "serial_no", "signature" } do
    if not t[k] or t[k] == "" then return nil, "Authorization lacks " .. k end
  end
  return t
end

--- Returns true or nil, error response.
function P:verify_request(req)
  local a, why = parse_authorization(req.headers["authorization"])
  if not a then return nil, self:error(req, 401, "SIGN_ERROR", "签名错误 (" .. why .. ")") end
  if not (req.headers["user-agent"] or ""):find("%S") then
    return nil, self:error(req, 400, "PARAM_ERROR", "请求必须带User-Agent (User-Agent header is required)")
  end
  if a.mchid ~= self.mchid then
    return nil, self:error(req, 401, "SIGN_ERROR", "签名错误 (mchid " .. a.mchid .. " is not registered)")
  end
  if a.serial_no ~= self.merchant_serial then
    return nil, self:error(req, 401, "SIGN_ERROR", "签名错误 (serial_no is not the merchant's API certificate serial)")
  end
  local ts = math.tointeger(tonumber(a.timestamp))
  if not ts or not a.timestamp:match("^%d+$") or math.abs(self:wall() - ts) > 300 then
    return nil, self:error(req, 401, "SIGN_ERROR", "签名错误 (timestamp outside the 5-minute window)")
  end
  local sig = crypto.base64_decode(a.signature)
  local msg = req.method .. "\n" .. req.target .. "\n" .. a.timestamp .. "\n" .. a.nonce_str .. "\n" .. req.body .. "\n"
  if not sig or not self.merchant_pub:verify(msg, sig) then
    return nil, self:error(req, 401, "SIGN_ERROR", "签名错误 (signature does not verify)")
  end
  return true
end

--- The validator's authentication step for a Pay entry: the per-client
-- rate limit (counted before authentication, entry.qps), then the signature.
-- Returns nil or the error response.
function P:authenticate(req, entry)
  if entry.qps and not self:rate_ok(req, entry.path, entry.qps) then
    return self:error(req, 429, "FREQUENCY_LIMITED", "接口有频率限制 (" .. entry.qps .. " requests/second)")
  end
  local ok, e = self:verify_request(req)
  if not ok then return e end
end

-- Routes run after wxhw.emulator.validate has authenticated the request and
-- checked its method and parameters against the contract.
local function handler(fn)
  return function(emu, req) return fn(emu, emu.pay, req) end
end

------------------------------------------------------------------ certificates
local function certificates(emu, self, req)
  local data = util.array()
  -- newest first; after a rotation the old certificate stays listed until dropped
  for i = #self.platforms, 1, -1 do
    local p = self.platforms[i]
    local nonce = emu.rng:alnum(12)
    local ct = crypto.aes_gcm_encrypt(self.apiv3_key, nonce, "certificate", p.cert)
    data[#data + 1] = { serial_no = p.serial,
      effective_time = p.info.not_before and rfc3339(p.info.not_before) or rfc3339(self:wall() - 86400),
      expire_time = p.info.not_after and rfc3339(p.info.not_after) or rfc3339(self:wall() + 3650 * 86400),
      encrypt_certificate = { algorithm = "AEAD_AES_256_GCM", nonce = nonce, associated_data = "certificate",
        ciphertext = crypto.base64_encode(ct) } }
  end
  return self:answer(req, 200, { data = data })
end

------------------------------------------------------------------ IoT fleet
local CATEGORIES = { [0] = "未知设备", [1] = "青蛙设备", [2] = "桌面收银设备", [3] = "行业收银硬件", [4] = "刷卡机",
  [5] = "智能音响", [6] = "智能扫码枪", [7] = "无人自助设备", [8] = "团餐设备", [9] = "自助收银设备",
  [10] = "孵化类设备", [11] = "闸机", [200] = "临时类" }
local CATEGORY_CODES = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 200 }
local CLASSES = { [0] = "未知", [1] = "基础版", [2] = "Mini版", [3] = "Pro版", [101] = "大屏自助收银机",
  [102] = "校园刷卡机", [103] = "自助售货机", [104] = "取票机", [105] = "充电宝设备", [106] = "自助一体机",
  [107] = "团餐机", [108] = "游艺机", [109] = "自助存取柜", [110] = "手持设备", [111] = "加油加气设备",
  [112] = "智能购物车", [114] = "桌面单屏刷脸设备", [116] = "桌面双屏刷脸设备", [118] = "桌面双屏POS设备",
  [120] = "桌面称重设备", [124] = "医保设备", [132] = "彩票机", [134] = "充电桩设备", [172] = "视觉识别设备",
  [180] = "门禁设备", [200] = "临时类别" }
local CLASS_CODES = { 0, 1, 2, 3, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 114, 116,
  118, 120, 124, 132, 134, 172, 180, 200 }
local SCENES = { "SDK模式", "APP模式", "离线模式", "境外APP模式" }
local OS = { "ANDROID", "LINUX", "WINDOWS" }

--- Device i (1-based) of the seeded fleet, computed on demand.
function P:device(i)
  local r = util.rng(self.seed * 1000003 + i)
  local cat = CATEGORY_CODES[r:int(1, #CATEGORY_CODES)]
  local cls = CLASS_CODES[r:int(1, #CLASS_CODES)]
  local scene = r:int(1, 4)
  local active = r:int(1, 10) <= 8
  local sub = r:int(1, 3) == 1
  return {
    device_sn = string.format("EMU%08d%s", i, r:alnum(8):upper()),
    camera_sn = "CAM-" .. r:alnum(12):upper(),
    device_category_code = tostring(cat), device_category = CATEGORIES[cat],
    device_class_code = tostring(cls), device_class = CLASSES[cls],
    device_model = "EMU-" .. r:int(100, 9999),
    app_scene_code = tostring(scene), app_scene = SCENES[scene],
    operating_system = OS[r:int(1, 3)],
    activation_status = active and "ACTIVATED" or "INACTIVATED",
    activation_time = active and os.date("!%Y-%m-%d %H:%M:%S.000+08:00", 1600000000 + r:int(0, 150000000)) or nil,
    mchid = self.mchid, merchant_shortname = "模拟商户",
    sub_mchid = sub and tostring(1900000100 + r:int(1, 99)) or nil,
    sub_merchant_shortname = sub and "模拟子商户" or nil,
  }
end

function P:device_by_sn(sn)
  local i = math.tointeger(tonumber(type(sn) == "string" and sn:match("^EMU(%d%d%d%d%d%d%d%d)%w+$") or ""))
  if not i or i < 1 or i > self.fleet_size then return nil end
  local d = self:device(i)
  if d.device_sn ~= sn then return nil end
  return d, i
end

-- The 20 QPS rule counts per client and API before authentication.
function P:rate_ok(req, api, qps)
  local sec = math.floor(socket.gettime())
  local key = (req.peer or "?") .. api
  local w = self.qps[key]
  if not w or w.sec ~= sec then w = { sec = sec, n = 0 }; self.qps[key] = w end
  w.n = w.n + 1
  return w.n <= qps
end

local function devices(emu, self, req)
  local offset, limit = math.tointeger(tonumber(req.q.offset)), math.tointeger(tonumber(req.q.limit))
  local day = util.china_day(emu:now())
  if self.daily.day ~= day then self.daily = { day = day, n = 0 } end
  self.daily.n = self.daily.n + 1
  if self.daily.n > self.daily_limit then
    return self:error(req, 429, "FREQUENCY_LIMITED", "接口有频率限制 (50000 requests/day)")
  end
  local data = util.array()
  for i = offset + 1, math.min(offset + limit, self.fleet_size) do data[#data + 1] = self:device(i) end
  local function link(o) return "/v3/iotmanage/devices?offset=" .. o .. "&limit=" .. limit end
  return self:answer(req, 200, { data = data, offset = offset, limit = limit, total_count = self.fleet_size,
    links = { self = link(offset),
      next = offset + limit < self.fleet_size and link(offset + limit) or "",
      prev = offset > 0 and link(math.max(0, offset - limit)) or "" } })
end

local function inspection(emu, self, req)
  -- 5-200 letters and digits: checked by the contract (contract/pay.lua)
  local sn = util.urldecode(req.path:sub(#"/v3/iotmanage/device-inspections/" + 1))
  local d, i = self:device_by_sn(sn)
  if not d then return self:error(req, 404, "RESOURCE_NOT_EXISTS", "设备不存在 (no such device_sn)") end
  local r = util.rng(self.seed * 7 + i)
  local roll = r:int(1, 10)
  local result = roll <= 7 and "SUCCESS" or roll <= 9 and "WARN" or "FAIL"
  local mac = function() return (r:hex(12):upper():gsub("(%x%x)", "%1:"):sub(1, 17)) end
  return self:answer(req, 200, { device_sn = sn, wired_mac = mac(), wireless_mac = mac(), bluetooth_mac = mac(),
    app_version = "2." .. r:int(0, 9) .. "." .. r:int(0, 99), camera_sn = d.camera_sn,
    imei = tostring(860000000000000 + r:int(0, 99999999)), result = result,
    errors = util.array(result == "FAIL" and { "CAMERA_CHECK_FAILED" } or {}),
    warnings = util.array(result == "WARN" and { "LOW_STORAGE" } or {}),
    inspect_time = rfc3339(1700000000 + r:int(0, 50000000)) })
end

------------------------------------------------------------------ control
local function control_routes(emu)
  local r = emu.control_routes
  r["POST /__emulator/pay/config"] = function(_, _, b)
    local self = emu.pay
    if b.mode then
      if b.mode ~= "certificate" and b.mode ~= "public_key" then return nil, "mode: certificate | public_key" end
      self.mode = b.mode
    end
    if type(b.skew) == "number" then self.skew = b.skew end
    if math.tointeger(b.daily_limit) then self.daily_limit = b.daily_limit end
    return { ok = true, mode = self.mode, skew = self.skew, daily_limit = self.daily_limit }
  end
  -- Sign an arbitrary Pay request as the merchant (for curl users and docs).
  r["POST /__emulator/pay/authorization"] = function(_, _, b)
    local self = emu.pay
    if type(b.method) ~= "string" or type(b.url) ~= "string" then return nil, "need method and url (path?query)" end
    local ts, nonce = tostring(self:wall()), crypto.nonce(32)
    local msg = b.method .. "\n" .. b.url .. "\n" .. ts .. "\n" .. nonce .. "\n" .. (b.body or "") .. "\n"
    local sig = crypto.base64_encode(self.merchant_key:sign(msg))
    return { authorization = string.format('%s mchid="%s",nonce_str="%s",timestamp="%s",serial_no="%s",signature="%s"',
      SCHEME, self.mchid, nonce, ts, self.merchant_serial, sig) }
  end
  -- Platform certificate rotation: responses are signed with the new key at
  -- once; /v3/certificates lists old and new until {"drop_old": true}.
  r["POST /__emulator/pay/rotate_certificate"] = function(_, _, b)
    local self = emu.pay
    if b.drop_old then
      self.platforms = { self.platforms[#self.platforms] }
    else
      local key, cert = keys.new_platform(emu.rng, "Tenpay.com Root CA emulated rotation " .. #self.platforms)
      self:use_platform(key, cert)
    end
    local serials = util.array()
    for _, p in ipairs(self.platforms) do serials[#serials + 1] = p.serial end
    return { serial_no = self.platform_serial, serials = serials, platform_certificate = self.platform_cert }
  end
  r["GET /__emulator/pay/device"] = function(_, req)
    local i = math.tointeger(tonumber(req.q.index or ""))
    if not i or i < 1 or i > emu.pay.fleet_size then return nil, "index 1..iot_devices" end
    return emu.pay:device(i)
  end
end

function P:reset()
  if self.platforms and #self.platforms > 1 or (self.platforms and self.platforms[1] ~= self.initial) then
    local p = self.initial
    self.platforms = { p }
    self.platform_key, self.platform_serial, self.platform_cert = p.key, p.serial, p.cert
  end
  self.qps, self.daily = {}, {}
  self.mode, self.skew, self.daily_limit = "certificate", 0, DAILY
end

function M.install(emu)
  local c = emu.credentials.pay
  local k = keys.load(emu.opts.keys_dir or keys.default_dir(emu.seed), emu.seed, util.rng(emu.seed + 101))
  local self = setmetatable({ emu = emu, keys = k, seed = emu.seed, mchid = c.mchid, apiv3_key = c.apiv3_key,
    public_key_id = c.public_key_id, fleet_size = tonumber(emu.opts.iot_devices) or 1000 }, P)
  self.merchant_serial = crypto.certificate(k.merchant_cert).serial
  self.merchant_pub = crypto.public_key(k.merchant_cert)
  self.merchant_key = crypto.private_key(k.merchant_key)
  self.platforms = {}
  self:use_platform(k.platform_key, k.platform_cert)
  self.initial = self.platforms[1]
  self.pubkey_key = crypto.private_key(k.pubkey_key)
  self:reset()
  emu:route("/v3/certificates", handler(certificates))
  emu:route("/v3/iotmanage/devices", handler(devices))
  emu:route_prefix("/v3/iotmanage/device-inspections/", handler(inspection))
  control_routes(emu)
  return self
end

return M

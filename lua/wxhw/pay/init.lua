--- WeChat Pay APIv3 for one merchant: signed requests, verified responses,
-- platform certificates, sensitive-field encryption, notifications, IoT
-- device listing. See docs/pay.md (with its sources).
--
--   local pay = wxhw.pay.new{ mchid =, serial_no =, private_key = PEM, apiv3_key =,
--                             platform_public_key = PEM, platform_public_key_id = "PUB_KEY_ID_…",
--                             platform_certificates = { PEM, … }, base_url = }
--   pay:authorization(method, canonical_url, body[, timestamp, nonce]) --> header value
--   pay:verify(headers, body[, now])          --> true, info | nil, err (err.reason names it)
--   pay:request{ method =, path =, query =, json = | body = }  --> data, response | nil, err
--   for device in pay:iot_devices{ limit = 100 } do ... end
--   pay:notification(headers, raw_body)      --> event | nil, err
--
-- Each object holds its own key, certificates, replay cache and rate-limit
-- namespace, so any number of merchants live side by side in one process.
local crypto = require "wxhw.crypto"
local errors = require "wxhw.errors"
local json = require "wxhw.json"
local url = require "wxhw.url"
local client_mod = require "wxhw.client"
local transport = require "wxhw.transport"
local mux_mod = require "wxhw.transport.mux"
local verify = require "wxhw.pay.verify"
local certificates = require "wxhw.pay.certificates"
local iot = require "wxhw.pay.iot"
local replay = require "wxhw.replay"

local M = { iot = iot, verify = verify, certificates = certificates }

local Pay = {}
Pay.__index = Pay
M.Pay = Pay

M.AUTH_TYPE = "WECHATPAY2-SHA256-RSA2048"
M.USER_AGENT = "wxhw/" .. tostring(require("wxhw.http").version) .. " (Lua)"
M.OAEP_MAX = 214 -- plaintext bytes for a 2048-bit key (OAEP SHA-1)

-- 19.5/s with a burst of 1 spaces calls 51 ms apart: never 21 in any 1 s
-- window on the server, even with a few ms of network jitter (rule 20000730).
M.IOT_RULE = { rate = 19.5, burst = 1, daily = iot.DAILY_QUOTA }

local function input(msg) return errors.fail("input", msg) end

--- Creates a merchant client. Bad configuration returns nil, err (kind
-- "input"); the private key is parsed once here.
-- Options besides the contract's: apiv3_key, transport (shared wxhw.transport),
-- limiter (a wxhw.ratelimit limiter, e.g. with the Redis backend of
-- wxhw.pay.limiter), qps (19.5), daily_quota (50 000), retry, hooks, on_cert_rotate(info), replay (a
-- wxhw.replay cache), now (clock), user_agent, cert_max_age (s, 12 h),
-- cert_min_interval (s between refreshes forced by unknown serials, 60).
function M.new(o)
  if type(o) ~= "table" then error("wxhw.pay.new: options table required", 2) end
  if type(o.mchid) ~= "string" or not o.mchid:match("^%d+$") or #o.mchid > 32 then
    return input("mchid must be the merchant number as a string of digits")
  end
  if type(o.serial_no) ~= "string" or not o.serial_no:match("^%x+$") or #o.serial_no > 64 then
    return input("serial_no must be the merchant API certificate serial (hex)")
  end
  if type(o.private_key) ~= "string" then return input("private_key must be the PEM text of apiclient_key.pem") end
  local key, kerr = crypto.private_key(o.private_key)
  if not key then return input("private_key: " .. tostring(kerr and kerr.message)) end
  if key:type() ~= "rsa" then
    return input("private_key is an " .. key:type() .. " key; WeChat Pay APIv3 needs the merchant RSA key")
  end
  if key:bits() < 2048 then return input("private_key must be RSA of at least 2048 bits") end
  if o.apiv3_key ~= nil and (type(o.apiv3_key) ~= "string" or #o.apiv3_key ~= 32) then
    return input("apiv3_key must be the 32-character APIv3 key")
  end
  -- The client sends through a mux over the transport: a request outside
  -- mux:run goes straight through; the device listing runs its pages'
  -- pipelines side by side inside one (wxhw.pay.iot).
  local t, terr = o.transport
  if t == nil or (type(t) == "table" and not t.request) then
    t, terr = transport.new(t or {})
    if not t then return nil, terr end
  end
  local mux = t.batch and mux_mod.new(t) or nil
  local c, cerr = client_mod.new{
    transport = mux or t,
    base_urls = { pay = o.base_url }, -- so no production backup either (wxhw.client's rule)
    limiter = o.limiter,
    limiter_namespace = "pay:" .. o.mchid .. ":",
    rate_limits = { ["pay /v3/iotmanage/devices"] = (o.qps or o.daily_quota) and { rate = o.qps or M.IOT_RULE.rate,
      burst = 1, daily = o.daily_quota or iot.DAILY_QUOTA } or M.IOT_RULE },
    rate_wait = o.rate_wait or 5,
    retry = o.retry, hooks = o.hooks, log = o.log,
  }
  if not c then return nil, cerr end
  local now = o.now or c.now
  local ring, rerr = certificates.new{ public_key = o.platform_public_key, public_key_id = o.platform_public_key_id,
    certificates = o.platform_certificates, now = now() }
  local ua = o.user_agent or M.USER_AGENT
  if not ring or type(ua) ~= "string" or ua:find("[\r\n]") then
    if t ~= o.transport and t.close then t:close() end
    if not ring then return nil, rerr end
    return input("user_agent must be one line")
  end
  return setmetatable({
    mchid = o.mchid, serial_no = o.serial_no:upper(), key = key, apiv3_key = o.apiv3_key,
    keyring = ring, client = c, mux = mux, now = now, user_agent = ua,
    replay = o.replay or replay.new{ ttl = 2 * verify.WINDOW },
    cert_max_age = o.cert_max_age or 12 * 3600, cert_ahead = o.cert_ahead or 3600,
    cert_min_interval = o.cert_min_interval or 60, on_cert_rotate = o.on_cert_rotate,
    last_forced_refresh = -math.huge, refreshing = false, own_transport = t ~= o.transport,
  }, Pay)
end

--- Closes the HTTP transport if this object made it (not a shared one).
function Pay:close()
  local t = self.client.transport
  if self.own_transport and t.close then t:close() end
end

function Pay:__tostring()
  return ("wxhw.Pay mchid=%s serial_no=%s keys=[%s]"):format(self.mchid, self.serial_no,
    table.concat(self.keyring:serials(), ","))
end

-- ------------------------------------------------------------- signing

--- The Authorization header value for one request (WECHATPAY2-SHA256-RSA2048,
-- pay.weixin.qq.com/wiki/doc/api_external/ch/wechatpay/wechatpay4_0.shtml).
-- canonical_url is the path with its query string exactly as sent; body the
-- exact bytes sent ("" for GET/DELETE). timestamp and nonce default to now
-- and 32 random [0-9A-Za-z].
function Pay:authorization(method, canonical_url, body, timestamp, nonce)
  if type(method) ~= "string" or not method:match("^%u+$") then error("authorization: method must be upper case", 2) end
  if type(canonical_url) ~= "string" or canonical_url:sub(1, 1) ~= "/" or canonical_url:find("[%s%c]") then
    error("authorization: canonical_url must be the path and query as sent, starting with /", 2)
  end
  body = body or ""
  if type(body) ~= "string" then error("authorization: body must be the exact string sent", 2) end
  timestamp = timestamp or math.floor(self.now())
  nonce = nonce or crypto.nonce(32)
  if type(nonce) ~= "string" or not nonce:match("^%w+$") then error("authorization: nonce must be [0-9A-Za-z]", 2) end
  local ts = string.format("%d", timestamp)
  local sig = crypto.base64_encode(self.key:sign(method .. "\n" .. canonical_url .. "\n" .. ts .. "\n" .. nonce ..
    "\n" .. body .. "\n"))
  return M.AUTH_TYPE .. ' mchid="' .. self.mchid .. '",nonce_str="' .. nonce .. '",timestamp="' .. ts ..
    '",serial_no="' .. self.serial_no .. '",signature="' .. sig .. '"'
end

-- ----------------------------------------------------------- verification

-- Key for a serial; an unknown serial in certificate mode downloads the
-- certificates again, at most once per cert_min_interval (no refresh storm).
function Pay:_lookup(serial, now)
  local ring = self.keyring
  if serial == ring.public_key_id then return ring.public_key end -- the fast path
  local pub, err = ring:lookup(serial, now)
  if pub or err.reason ~= "unknown_serial" or not self.keyring:uses_certificates() or not self.apiv3_key then
    return pub, err
  end
  if self.refreshing or self.client.now() - self.last_forced_refresh < self.cert_min_interval then return nil, err end
  self.last_forced_refresh = self.client.now()
  local ok, rerr = self:refresh_certificates()
  if not ok then
    err.message = err.message .. " (certificate refresh failed: " .. tostring(rerr.message) .. ")"
    return nil, err
  end
  return self.keyring:lookup(serial, now)
end

--- Verifies a response or callback on its raw body. headers: a table (any
-- case) or a function(name). Returns true, info {timestamp, nonce, serial,
-- request_id} or nil, err with err.reason (see wxhw.pay.verify).
function Pay:verify(headers, body, now)
  if type(body) ~= "string" then error("pay:verify: body must be the raw body string", 2) end
  now = now or self.now()
  return verify.verify(headers, body, now, self._lookup, self)
end

--- Decrypts an AEAD_AES_256_GCM resource (callback `resource`, certificate
-- entries) with the APIv3 key. Returns plaintext or nil, err.
function Pay:decrypt(resource)
  if not self.apiv3_key then return input("decrypting needs apiv3_key in wxhw.pay.new") end
  return certificates.decrypt_resource(self.apiv3_key, resource)
end

--- Encrypts a sensitive field (RSA-OAEP SHA-1) for WeChat Pay. Returns the
-- base64 ciphertext and the serial to send as Wechatpay-Serial.
function Pay:encrypt(plain)
  if type(plain) ~= "string" then error("pay:encrypt: plaintext must be a string", 2) end
  if #plain > M.OAEP_MAX then
    return input("sensitive field is " .. #plain .. " bytes; RSA-OAEP with a 2048-bit key takes at most 214")
  end
  if self.keyring:uses_certificates() and self.keyring.count == 0 then
    local ok, err = self:ensure_certificates()
    if not ok then return nil, err end
  end
  local pub, serial = self.keyring:encryption_key(self.now())
  if not pub then return nil, serial end
  return crypto.base64_encode(pub:encrypt_oaep(plain)), serial
end

--- Decrypts a downstream sensitive field (encrypted to the merchant key).
function Pay:decrypt_field(b64)
  local ct = type(b64) == "string" and crypto.base64_decode(b64)
  if not ct then return input("sensitive field is not base64") end
  local plain, err = self.key:decrypt_oaep(ct)
  if not plain then return errors.fail("crypto", "cannot decrypt the field with the merchant key", { cause = err }) end
  return plain
end

-- ---------------------------------------------------------------- requests

-- A pay error from an HTTP error response ({"code","message","detail"}).
local function api_error(res, status)
  local body = json.decode(res.body or "")
  local rid = url.header(res.headers, "request-id")
  local code = type(body) == "table" and body.code or nil
  local msg = type(body) == "table" and body.message or nil
  return errors.new("pay", (code and (code .. ": ") or "") .. (msg or ("HTTP " .. status)), {
    errcode = code, errmsg = msg, http_status = status, request_id = rid,
    retryable = status >= 500 or status == 429, detail = type(body) == "table" and body.detail or nil })
end

-- Sends one signed request; returns the raw response (any status) or nil, err.
function Pay:_send(spec)
  local headers = { ["Accept"] = "application/json", ["User-Agent"] = self.user_agent }
  local serial = spec.serial
  if serial == nil and spec.path ~= "/v3/certificates" then serial = self.keyring:request_serial(self.now()) end
  if serial then headers["Wechatpay-Serial"] = serial end
  local body = spec.body
  if spec.json ~= nil then body = json.encode(spec.json) end
  if body then headers["Content-Type"] = "application/json" end
  for k, v in pairs(spec.headers or {}) do headers[k] = v end
  local res, err = self.client:call{
    product = "pay", method = spec.method or "GET", path = spec.path, query = spec.query, body = body,
    headers = headers, raw = true, idempotent = spec.idempotent, timeout = spec.timeout,
    sign = function(method, target, b) return { Authorization = self:authorization(method, target, b) } end,
  }
  if not res then
    if err.response then -- 5xx/429 after the retries: report the API's own error
      local e = api_error(err.response, err.response.status)
      e.attempts, e.path, e.method = err.attempts, err.path, err.method
      return nil, e
    end
    return nil, err
  end
  return res
end

--- One API call: signed, sent through the shared pipeline (rate limits,
-- retries on 429 and 5xx for idempotent calls), answer verified on its raw
-- body. Returns the decoded body and the response, or nil, err.
function Pay:request(spec)
  if type(spec) ~= "table" or type(spec.path) ~= "string" or spec.path:sub(1, 1) ~= "/" then
    error("pay:request: spec with path starting with / required", 2)
  end
  if spec.path ~= "/v3/certificates" and self.keyring:uses_certificates() then
    local ok, err = self:ensure_certificates()
    if not ok then return nil, err end
  end
  local res, err = self:_send(spec)
  if not res then return nil, err end
  local status = res.status
  if status < 200 or status >= 300 then return nil, api_error(res, status) end
  local ok, verr = self:verify(res.headers, res.body)
  if not ok then
    verr.http_status, verr.path = status, spec.path
    return nil, verr
  end
  if res.body == "" then return {}, res end
  local data = json.decode(res.body)
  if type(data) ~= "table" then
    return errors.fail("pay", "signed answer of " .. spec.path .. " is not a JSON object", { http_status = status })
  end
  return data, res
end

-- ------------------------------------------------------------ certificates

--- Downloads /v3/certificates, decrypts them with the APIv3 key and checks
-- that the answer verifies against the downloaded set before using it.
-- Returns the list of certificate infos or nil, err.
function Pay:refresh_certificates()
  if not self.apiv3_key then return input("downloading certificates needs apiv3_key") end
  if self.refreshing then return errors.fail("state", "a certificate refresh is already running") end
  self.refreshing = true
  local ok, res, err = pcall(self._send, self, { method = "GET", path = "/v3/certificates" })
  self.refreshing = false -- also after a raised error, or no refresh would ever run again
  if not ok then error(res, 0) end
  if not res then return nil, err end
  if res.status ~= 200 then return nil, api_error(res, res.status) end
  local list
  list, err = certificates.decode_download(self.apiv3_key, res.body)
  if not list then return nil, err end
  local by_serial = {}
  for _, c in ipairs(list) do by_serial[c.serial] = c end
  local valid, verr = verify.verify(res.headers, res.body, self.now(), function(serial, now)
    local c = by_serial[serial:upper()]
    if c then return c.public_key end
    return self.keyring:lookup(serial, now)
  end)
  if not valid then
    verr.message = "/v3/certificates answer: " .. verr.message
    return nil, verr
  end
  local before = table.concat(self.keyring:serials(), ",")
  self.keyring:replace(list, self.now())
  local after = table.concat(self.keyring:serials(), ",")
  if before ~= after and self.on_cert_rotate then
    pcall(self.on_cert_rotate, { mchid = self.mchid, before = before, after = after })
  end
  return list
end

--- Downloads certificates when the set is empty, old or about to expire.
-- A failed refresh is an error only when no certificate is usable.
function Pay:ensure_certificates()
  local now = self.now()
  if self.refreshing or not self.keyring:stale(now, self.cert_max_age, self.cert_ahead) then return true end
  if not self.apiv3_key then
    if self.keyring.count == 0 and not self.keyring.public_key then
      return input("no platform certificates or public key configured, and no apiv3_key to download them")
    end
    return true
  end
  local ok, err = self:refresh_certificates()
  if ok then return true end
  if self.keyring:encryption_key(now) then return true end
  return nil, err
end

-- ---------------------------------------------------------- notifications

--- Verifies and decrypts a notification. raw_body must be the request body
-- string exactly as received (never a decoded table: re-serialised JSON does
-- not verify). Returns the event (decoded JSON with `plaintext` and `data` =
-- the decrypted resource, decoded when it is JSON) or nil, err with
-- err.reason: missing_header, bad_header, probe, skew, unknown_serial,
-- bad_signature, replay, bad_resource, gcm_tag.
function Pay:notification(headers, raw_body, now)
  if type(raw_body) ~= "string" then
    error("pay:notification: raw_body must be the raw request body string, not a " .. type(raw_body), 2)
  end
  now = now or self.now()
  local ok, h = self:verify(headers, raw_body, now)
  if not ok then return nil, h end
  local fresh, rerr = self.replay:check(h.timestamp .. ":" .. h.nonce, now)
  if fresh == nil then return nil, rerr end
  if not fresh then
    return verify.fail("replay", "this notification (timestamp and nonce) was already accepted",
      { request_id = h.request_id })
  end
  local event = json.decode(raw_body)
  if type(event) ~= "table" or type(event.resource) ~= "table" then
    return verify.fail("bad_resource", "notification body has no resource object", { request_id = h.request_id })
  end
  local plain, derr = self:decrypt(event.resource)
  if not plain then
    derr.request_id = h.request_id
    return nil, derr
  end
  event.plaintext = plain
  event.data = (json.decode(plain))
  event.request_id = h.request_id
  return event
end

-- IoT devices: iot_devices, iot_devices_pager, device_inspection (wxhw.pay.iot)
for name, fn in pairs(iot.methods) do Pay[name] = fn end

return M

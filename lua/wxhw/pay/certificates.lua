--- The keys one merchant uses to verify WeChat Pay and to encrypt sensitive
-- fields: the WeChat Pay public key (PUB_KEY_ID_... mode), platform
-- certificates by serial, or both during a migration (GET /v3/certificates as
-- wechatpay-go's core/downloader reads it; the public key mode:
-- pay.weixin.qq.com/docs/merchant/development/interface-rules/signature-verification.html).
-- One Keyring per merchant; nothing is shared between merchants.
local crypto = require "wxhw.crypto"
local json = require "wxhw.json"
local errors = require "wxhw.errors"
local verify = require "wxhw.pay.verify"

local Keyring = {}
Keyring.__index = Keyring

local M = { Keyring = Keyring }

-- Serials of X.509 certificates are hex; compare them case-insensitively.
local function norm_serial(s)
  if s:sub(1, 11) == "PUB_KEY_ID_" then return s end
  return s:upper()
end

--- opts: public_key (PEM), public_key_id ("PUB_KEY_ID_..."), certificates
-- (list of PEM), now (wall clock, seconds). Returns a keyring or nil, err.
function M.new(opts)
  local self = setmetatable({ certs = {}, count = 0, fetched_at = nil }, Keyring)
  if opts.public_key ~= nil or opts.public_key_id ~= nil then
    if type(opts.public_key) ~= "string" or type(opts.public_key_id) ~= "string" then
      return errors.fail("input", "platform_public_key and platform_public_key_id go together")
    end
    if opts.public_key_id:sub(1, 11) ~= "PUB_KEY_ID_" then
      return errors.fail("input", "platform_public_key_id must start with PUB_KEY_ID_")
    end
    local pub, err = crypto.public_key(opts.public_key)
    if not pub then return errors.fail("input", "platform_public_key: " .. tostring(err.message)) end
    if pub:type() ~= "rsa" then return errors.fail("input", "platform_public_key must be an RSA key") end
    self.public_key, self.public_key_id = pub, opts.public_key_id
  end
  for i, pem in ipairs(opts.certificates or {}) do
    local _, err = self:add(pem)
    if err then return errors.fail("input", "platform_certificates[" .. i .. "]: " .. err.message) end
  end
  if self.count > 0 then self.fetched_at = opts.now end -- configured certs count as fresh
  return self
end

--- Adds a platform certificate (PEM). Returns its info table or nil, err.
function Keyring:add(pem)
  if type(pem) ~= "string" then return errors.fail("input", "a certificate must be a PEM string") end
  local c, err = crypto.certificate(pem)
  if not c then return nil, err end
  if c.public_key:type() ~= "rsa" then return errors.fail("input", "platform certificate key is not RSA") end
  if not self.certs[c.serial] then self.count = self.count + 1 end
  self.certs[c.serial] = c
  return c
end

--- Public key for a Wechatpay-Serial, or nil, err (unknown_serial,
-- expired_certificate).
function Keyring:lookup(serial, now)
  serial = norm_serial(serial)
  if self.public_key_id and serial == self.public_key_id then return self.public_key end
  local c = self.certs[serial]
  if not c then
    return verify.fail("unknown_serial", "no WeChat Pay public key or platform certificate has serial " ..
      errors.cut(serial, 64), { serial = serial })
  end
  if c.not_after and now > c.not_after then
    return verify.fail("expired_certificate", "platform certificate " .. serial .. " expired", { serial = serial })
  end
  return c.public_key
end

function Keyring:knows(serial)
  serial = norm_serial(serial)
  return (self.public_key_id ~= nil and serial == self.public_key_id) or self.certs[serial] ~= nil
end

--- Certificate mode is in use (no public key, or a migration).
function Keyring:uses_certificates() return self.public_key == nil or self.count > 0 end

--- Key for encrypting sensitive fields and the serial to send with it: the
-- public key when configured, else the valid certificate that expires last.
function Keyring:encryption_key(now)
  if self.public_key then return self.public_key, self.public_key_id end
  local best
  for _, c in pairs(self.certs) do
    if (not c.not_after or c.not_after > now) and (not c.not_before or c.not_before <= now) then
      if not best or (c.not_after or math.huge) > (best.not_after or math.huge) then best = c end
    end
  end
  if not best then return errors.fail("pay", "no valid platform certificate to encrypt with; refresh certificates") end
  return best.public_key, best.serial
end

--- The serial to send as Wechatpay-Serial on requests (the one we can verify).
function Keyring:request_serial(now)
  local pub, serial = self:encryption_key(now)
  if pub then return serial end
  return nil
end

--- True when the certificate set should be downloaded again: empty, older than
-- max_age, or every certificate expires within `ahead` seconds.
function Keyring:stale(now, max_age, ahead)
  if self.count == 0 then return self.public_key == nil end
  if self.fetched_at and now - self.fetched_at >= max_age then return true end
  for _, c in pairs(self.certs) do
    if not c.not_after or c.not_after - now > ahead then return false end
  end
  return true
end

--- Replaces the certificate set with a downloaded one (list of cert infos).
function Keyring:replace(list, now)
  local certs, n = {}, 0
  for _, c in ipairs(list) do
    if not certs[c.serial] then n = n + 1 end
    certs[c.serial] = c
  end
  self.certs, self.count, self.fetched_at = certs, n, now
end

function Keyring:serials()
  local out = {}
  if self.public_key_id then out[#out + 1] = self.public_key_id end
  local certs = {}
  for s in pairs(self.certs) do certs[#certs + 1] = s end
  table.sort(certs)
  for _, s in ipairs(certs) do out[#out + 1] = s end
  return out
end

function Keyring:__tostring()
  return "wxhw.pay keyring (" .. table.concat(self:serials(), ", ") .. ")"
end

--- Decrypts one AEAD_AES_256_GCM resource {algorithm, nonce, associated_data,
-- ciphertext} with the APIv3 key. Returns plaintext or nil, err (reason
-- "gcm_tag" when authentication fails).
function M.decrypt_resource(apiv3_key, r)
  if type(r) ~= "table" then return verify.fail("bad_resource", "resource is not an object") end
  if r.algorithm ~= "AEAD_AES_256_GCM" then
    return verify.fail("bad_resource", "unsupported resource algorithm " .. errors.cut(r.algorithm, 40))
  end
  if type(r.nonce) ~= "string" or type(r.ciphertext) ~= "string" then
    return verify.fail("bad_resource", "resource lacks nonce or ciphertext")
  end
  local aad = r.associated_data
  if aad == nil or aad == json.null then aad = "" end
  if type(aad) ~= "string" then return verify.fail("bad_resource", "associated_data is not a string") end
  local ct = crypto.base64_decode(r.ciphertext)
  if not ct or #ct < 16 then return verify.fail("bad_resource", "resource ciphertext is not base64 of ct||tag") end
  local plain = crypto.aes_gcm_decrypt(apiv3_key, r.nonce, aad, ct)
  if not plain then
    return verify.fail("gcm_tag", "AES-GCM authentication failed: wrong APIv3 key or altered ciphertext")
  end
  return plain
end

--- Parses a /v3/certificates body and decrypts every entry. Returns a list of
-- certificate infos (each also has `pem`) or nil, err.
function M.decode_download(apiv3_key, body)
  local doc = json.decode(body)
  if type(doc) ~= "table" or type(doc.data) ~= "table" then
    return errors.fail("pay", "/v3/certificates answer has no data list")
  end
  local out = {}
  for i, e in ipairs(doc.data) do
    if type(e) ~= "table" or type(e.serial_no) ~= "string" then
      return errors.fail("pay", "/v3/certificates entry " .. i .. " has no serial_no")
    end
    local pem, err = M.decrypt_resource(apiv3_key, e.encrypt_certificate)
    if not pem then return nil, err end
    local c = crypto.certificate(pem)
    if not c then return errors.fail("pay", "/v3/certificates entry " .. i .. " is not a certificate") end
    if c.serial ~= norm_serial(e.serial_no) then
      return errors.fail("pay", "/v3/certificates entry " .. i .. ": serial_no does not match the certificate")
    end
    c.pem = pem
    out[#out + 1] = c
  end
  if #out == 0 then return errors.fail("pay", "/v3/certificates returned no certificate") end
  return out
end

return M

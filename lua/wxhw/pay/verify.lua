--- Verification of WeChat Pay APIv3 response and callback signatures
-- (pay.weixin.qq.com/docs/merchant/development/interface-rules/signature-verification.html).
-- Works on the raw body bytes only. Every failure is an
-- error of kind "signature" with a named `reason`:
--   missing_header   a Wechatpay-* header is absent (or empty)
--   bad_header       a header is repeated or malformed (timestamp not digits ...)
--   signature_type   Wechatpay-Signature-Type is not WECHATPAY2-SHA256-RSA2048
--   probe            the signature starts with WECHATPAY/SIGNTEST/ (a deliberate probe)
--   skew             |now - Wechatpay-Timestamp| >= 300 s, either direction
--   unknown_serial   no key for Wechatpay-Serial
--   expired_certificate  the platform certificate for that serial has expired
--   bad_signature    the signature does not verify (or is not base64)
local crypto = require "wxhw.crypto"
local errors = require "wxhw.errors"

local M = {}

M.WINDOW = 300 -- seconds, both ways (wechatpay-go: reject when |skew| >= 5 min)
M.SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
M.PROBE_PREFIX = "WECHATPAY/SIGNTEST/"

local REQUIRED = { "wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial" }

function M.fail(reason, message, fields)
  local f = { reason = reason }
  for k, v in pairs(fields or {}) do f[k] = v end
  return errors.fail("signature", message, f)
end

local function canonical(name)
  return (name:gsub("^%l", string.upper):gsub("%-%l", string.upper))
end

local function lowered(headers)
  local lower = {}
  for k, v in pairs(headers) do
    if type(k) == "string" then
      local lk = k:lower()
      if lower[lk] ~= nil then lower[lk] = { lower[lk], v } else lower[lk] = v end
    end
  end
  return lower
end

--- Returns a function name → value (name in lower case) for headers given as
-- a table (any case; values a string or a list, as wxhw.http returns
-- repeated headers) or as a getter function. A repeated header gives nil,
-- "repeated".
function M.getter(headers)
  if type(headers) == "function" then
    return function(name)
      local v = headers(name)
      -- getters from frameworks differ in case handling: try the canonical spelling
      if v == nil then v = headers(canonical(name)) end
      return v
    end
  end
  if type(headers) ~= "table" then error("headers must be a table or a function(name)", 3) end
  local lower
  return function(name)
    local v = headers[name] -- the common case: already lower case (wxhw.http, ngx)
    if v == nil then
      lower = lower or lowered(headers)
      v = lower[name]
    end
    if type(v) == "table" then
      if #v == 1 then return v[1] end
      return nil, "repeated"
    end
    return v
  end
end

local FIELD = { ["wechatpay-timestamp"] = "timestamp", ["wechatpay-nonce"] = "nonce",
  ["wechatpay-signature"] = "signature", ["wechatpay-serial"] = "serial" }

-- The common case without building a getter: a table with lower-case names
-- and one string each (wxhw.http, ngx.req.get_headers). nil: use the general path.
local function fast_headers(headers)
  local ts, nonce = headers["wechatpay-timestamp"], headers["wechatpay-nonce"]
  local sig, serial = headers["wechatpay-signature"], headers["wechatpay-serial"]
  if type(ts) ~= "string" or type(nonce) ~= "string" or type(sig) ~= "string" or type(serial) ~= "string"
    or nonce == "" or sig == "" or serial == "" or #ts > 12 or not ts:find("^%d+$") then
    return nil
  end
  local t = headers["wechatpay-signature-type"]
  if t ~= nil and t ~= M.SIGNATURE_TYPE then return nil end
  local rid = headers["request-id"]
  return { timestamp = tonumber(ts), raw_timestamp = ts, nonce = nonce, signature = sig, serial = serial, type = t,
    request_id = type(rid) == "string" and rid or nil }
end

--- Reads the signature headers. Returns a table {timestamp, nonce, signature,
-- serial, type, request_id} or nil, err.
function M.read_headers(headers)
  if type(headers) == "table" then
    local h = fast_headers(headers)
    if h then return h end
  end
  local get = M.getter(headers)
  local request_id = get("request-id")
  if type(request_id) ~= "string" then request_id = nil end
  local h = { request_id = request_id }
  for _, name in ipairs(REQUIRED) do
    local v, why = get(name)
    if why == "repeated" then
      return M.fail("bad_header", "header " .. name .. " appears more than once", { request_id = request_id })
    end
    if v == nil or v == "" then
      return M.fail("missing_header", "response has no " .. name .. " header; it cannot be verified",
        { request_id = request_id, header = name })
    end
    if type(v) ~= "string" then
      return M.fail("bad_header", "header " .. name .. " is not a string", { request_id = request_id })
    end
    h[FIELD[name]] = v
  end
  if #h.timestamp > 12 or not h.timestamp:match("^%d+$") then
    return M.fail("bad_header", "Wechatpay-Timestamp is not a Unix time in seconds", { request_id = request_id })
  end
  h.raw_timestamp, h.timestamp = h.timestamp, tonumber(h.timestamp)
  local t = get("wechatpay-signature-type")
  if t ~= nil and t ~= M.SIGNATURE_TYPE then
    return M.fail("signature_type", "unsupported Wechatpay-Signature-Type " .. errors.cut(t, 40),
      { request_id = request_id })
  end
  h.type = t
  return h
end

--- Checks the probe prefix and the time window. Returns true or nil, err.
function M.check_fresh(h, now)
  -- 'W' (87) first: base64 signatures rarely start with it, so no substring is made
  if h.signature:byte(1) == 87 and h.signature:sub(1, #M.PROBE_PREFIX) == M.PROBE_PREFIX then
    return M.fail("probe", "signature is a WECHATPAY/SIGNTEST/ probe: treat as a verification failure",
      { request_id = h.request_id })
  end
  local skew = now - h.timestamp
  if skew >= M.WINDOW or -skew >= M.WINDOW then
    return M.fail("skew", string.format("Wechatpay-Timestamp is %d s %s local time (limit %d s); check the clock",
      math.floor(math.abs(skew)), skew > 0 and "behind" or "ahead of", M.WINDOW),
      { request_id = h.request_id, skew = skew })
  end
  return true
end

--- The signed string: TIMESTAMP\nNONCE\nBODY\n.
function M.message(h, body)
  return (h.raw_timestamp or h.timestamp) .. "\n" .. h.nonce .. "\n" .. body .. "\n"
end

--- Verifies the signature with `pub` (a wxhw public key). Returns true or nil, err.
function M.check_signature(h, body, pub)
  local sig = crypto.base64_decode(h.signature)
  if not sig or not pub:verify(M.message(h, body), sig) then
    return M.fail("bad_signature", "Wechatpay-Signature does not match the body (serial " .. errors.cut(h.serial, 64) ..
      "); was the body re-serialised or altered?", { request_id = h.request_id })
  end
  return true
end

--- Full check. `lookup(serial, now)` → public key | nil, err (or, with
-- `obj`, `lookup(obj, serial, now)`). Returns true, h or nil, err.
function M.verify(headers, body, now, lookup, obj)
  if type(body) ~= "string" then error("body must be the raw body string", 2) end
  local h, err = M.read_headers(headers)
  if not h then return nil, err end
  local ok
  ok, err = M.check_fresh(h, now)
  if not ok then return nil, err end
  local pub
  if obj ~= nil then pub, err = lookup(obj, h.serial, now) else pub, err = lookup(h.serial, now) end
  if not pub then
    err.request_id = err.request_id or h.request_id
    return nil, err
  end
  ok, err = M.check_signature(h, body, pub)
  if not ok then return nil, err end
  return true, h
end

return M

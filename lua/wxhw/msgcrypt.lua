--- WXBizMsgCrypt: message-push encryption for Mini Program / Official Account and
-- WeCom callbacks (AES-256-CBC, IV = first 16 key bytes, PKCS#7 to 32 bytes,
-- plaintext = random16 .. len(4, big-endian) .. msg .. receive_id).
-- See docs/msgcrypt.md and developers.weixin.qq.com/miniprogram/dev/framework/server-ability/message-push.html.
local crypto = require "wxhw.crypto"
local errors = require "wxhw.errors"
local xml = require "wxhw.xml"

local concat, sort = table.concat, table.sort
local byte, format = string.byte, string.format

local M = {}
local MsgCrypt = {}
MsgCrypt.__index = MsgCrypt

-- WeCom SDK codes, kept so callers can report the number the docs use.
M.codes = {
  validate_signature = -40001, parse = -40002, compute_signature = -40003,
  illegal_aes_key = -40004, validate_receive_id = -40005, encrypt_aes = -40006,
  decrypt_aes = -40007, illegal_buffer = -40008, encode_base64 = -40009,
  decode_base64 = -40010, gen_reply = -40011,
}

local function fail(code, message)
  return nil, errors.new("callback", message, { errcode = M.codes[code], reason = code })
end

local function sha1_sorted(parts)
  sort(parts)
  return crypto.hex(crypto.sha1(concat(parts)))
end

--- The plain 3-parameter URL signature: sha1(sort(token, timestamp, nonce)).
function M.url_signature(token, timestamp, nonce)
  return sha1_sorted({ token, tostring(timestamp), tostring(nonce) })
end

--- new{ token=, encoding_aes_key= (43 chars), receive_id= (appid / corpid / suite id) }
function M.new(opts)
  if type(opts) ~= "table" then error("msgcrypt.new: options table required", 2) end
  local token, key, rid = opts.token, opts.encoding_aes_key, opts.receive_id
  if type(token) ~= "string" or token == "" then error("msgcrypt.new: token must be a non-empty string", 2) end
  if type(rid) ~= "string" or rid == "" then error("msgcrypt.new: receive_id must be a non-empty string", 2) end
  if type(key) ~= "string" or #key ~= 43 or key:find("[^%w]") then
    return fail("illegal_aes_key", "encoding_aes_key must be 43 characters from [A-Za-z0-9]")
  end
  local aes_key = crypto.base64_decode(key .. "=")
  if not aes_key or #aes_key ~= 32 then
    return fail("illegal_aes_key", "encoding_aes_key does not decode to 32 bytes")
  end
  -- The token and key live in the C engine (wiped when it is collected);
  -- __tostring never shows them.
  return setmetatable({ receive_id = rid, _eng = crypto.msgcrypt_engine(token, aes_key, rid) }, MsgCrypt)
end

function MsgCrypt:__tostring()
  return "wxhw.MsgCrypt(receive_id=" .. self.receive_id .. ")"
end

local function str(v)
  if type(v) == "string" then return v end
  return tostring(v)
end

--- msg_signature = sha1(sort(token, timestamp, nonce, encrypted)), lowercase hex.
function MsgCrypt:signature(timestamp, nonce, encrypted)
  return self._eng:signature(str(timestamp), str(nonce), encrypted)
end

function MsgCrypt:url_signature(timestamp, nonce)
  return self._eng:signature(str(timestamp), str(nonce))
end

--- Checks the plain `signature` query parameter (plaintext mode, GET verification).
function MsgCrypt:verify_url(signature, timestamp, nonce)
  if type(signature) ~= "string" or not crypto.constant_time_equal(signature, self:url_signature(timestamp, nonce)) then
    return fail("validate_signature", "URL signature mismatch")
  end
  return true
end

-- The engine answers nil, reason, message for a bad push.
local function engine_result(msg, reason, message)
  if msg then return msg end
  return fail(reason, message)
end

--- Decrypts after checking msg_signature; returns the inner message.
function MsgCrypt:decrypt(msg_signature, timestamp, nonce, encrypted)
  if type(encrypted) ~= "string" or encrypted == "" then return fail("parse", "missing Encrypt field") end
  return engine_result(self._eng:open(msg_signature, str(timestamp), str(nonce), encrypted))
end

--- Decrypts without a signature check: only for payloads already verified.
function MsgCrypt:decrypt_unsigned(encrypted)
  return engine_result(self._eng:decrypt(encrypted))
end

--- Encrypts a reply; `random16` (16 bytes) is for known-answer tests only.
-- Returns encrypted, msg_signature.
function MsgCrypt:encrypt(plaintext, timestamp, nonce, random16)
  if type(plaintext) ~= "string" then error("msgcrypt:encrypt: plaintext must be a string", 2) end
  if random16 ~= nil and (type(random16) ~= "string" or #random16 ~= 16) then
    error("msgcrypt:encrypt: random prefix must be 16 bytes", 2)
  end
  local enc, sig, message = self._eng:seal(plaintext, str(timestamp), str(nonce), random16)
  if not enc then return fail(sig, message) end
  return enc, sig
end

-- Envelopes ---------------------------------------------------------------

local cjson = require "cjson.safe"
local json_envelope = crypto.json_envelope

local xml_field = xml.field
M.xml_field = xml_field

local cdata = xml.cdata

--- Extracts the Encrypt field of a pushed body: JSON (Mini Program `Encrypt`,
-- WeCom `encrypt`) or XML. Returns encrypted, format ("json" | "xml").
function M.envelope_encrypt(raw_body)
  if type(raw_body) ~= "string" then error("envelope_encrypt: raw body string required", 2) end
  local first = raw_body:match("^%s*(.)")
  if first == "{" then
    local plain = json_envelope(raw_body) -- nil: not plain enough to be sure without a decoder
    if plain then return plain, "json" end
    local t = cjson.decode(raw_body)
    if type(t) ~= "table" then return fail("parse", "body is not valid JSON") end
    local enc = t.Encrypt or t.encrypt
    if type(enc) ~= "string" then return fail("parse", "JSON body has no Encrypt field") end
    return enc, "json"
  elseif first == "<" then
    local enc = xml_field(raw_body, "Encrypt")
    if not enc then return fail("parse", "XML body has no Encrypt element") end
    return enc, "xml"
  end
  return fail("parse", "body is neither JSON nor XML")
end

--- Verifies and decrypts a pushed body with the query's msg_signature/timestamp/nonce.
function MsgCrypt:open(query, raw_body)
  local ts, nonce = query.timestamp, query.nonce
  if type(raw_body) == "string" and type(ts) == "string" and type(nonce) == "string" then
    -- one C call for a plain JSON envelope; false: let the general path read it
    local msg, reason, message = self._eng:open_json(query.msg_signature, ts, nonce, raw_body)
    if msg then return msg, "json" end
    if msg == nil then return fail(reason, message) end
  end
  local enc, fmt = M.envelope_encrypt(raw_body)
  if not enc then return nil, fmt end
  local msg, err = self:decrypt(query.msg_signature, ts, nonce, enc)
  if not msg then return nil, err end
  return msg, fmt
end

local MP_KEYS = { '{"Encrypt":"', '","MsgSignature":"', '","TimeStamp":', ',"Nonce":"', "Encrypt", "MsgSignature",
                  "TimeStamp", "Nonce" }
-- WeCom's timestamp is a JSON string, as both official WeCom SDKs write it
-- (weworkapi_golang json_callback, weworkapi_python callback_json_python3).
local WECOM_KEYS = { '{"encrypt":"', '","msgsignature":"', '","timestamp":"', '","nonce":"', "encrypt", "msgsignature",
                     "timestamp", "nonce", string_timestamp = true }

-- The JSON reply object, concatenated when every value is plain (base64, hex,
-- digits, [A-Za-z0-9] nonce: nothing to escape), else through cjson.
-- Byte loops rather than patterns: string.find with a pattern is not
-- compiled by LuaJIT and made the reply path's trace abort.
local function is_timestamp(s) -- ^[1-9]%d*$
  local n = #s
  if n == 0 or byte(s, 1) == 48 then return false end
  for i = 1, n do
    local b = byte(s, i)
    if b < 48 or b > 57 then return false end
  end
  return true
end

local function is_alnum(s) -- ^%w*$ (C locale)
  for i = 1, #s do
    local b = byte(s, i)
    if not ((b >= 48 and b <= 57) or (b >= 65 and b <= 90) or (b >= 97 and b <= 122)) then return false end
  end
  return true
end

-- The timestamp as signed and sent: an integral number as its digits (Lua
-- 5.4 prints a float one as "1700000000.0"), anything else as tostring.
-- Second result: digits only, nothing to quote in JSON.
local function ts_string(t)
  if type(t) == "number" and t >= 1 and t < 1e15 and t % 1 == 0 then return format("%d", t), true end
  t = tostring(t)
  return t, is_timestamp(t)
end

local function json_reply(k, enc, sig, timestamp, plain_ts, nonce, plain_nonce)
  nonce = tostring(nonce)
  if plain_ts and (plain_nonce or is_alnum(nonce)) then
    return k[1] .. enc .. k[2] .. sig .. k[3] .. timestamp .. k[4] .. nonce .. '"}'
  end
  return cjson.encode({ [k[5]] = enc, [k[6]] = sig, [k[7]] = k.string_timestamp and timestamp or tonumber(timestamp),
                        [k[8]] = nonce })
end

--- The passive reply body alone (what a callback answers): for the JSON
-- styles with a digits-only timestamp, one C call builds the whole body
-- (wxhw.crypto engine seal_json); otherwise as reply().
-- `plaintext` may also be a table for the JSON styles (a handler's reply):
-- a flat one is written as JSON in the same C call, any other goes through
-- cjson first.
function MsgCrypt:reply_body(plaintext, style, timestamp)
  local ts, plain_ts = ts_string(timestamp or os.time())
  local json_style = style == "mp_json" or style == "wecom_json"
  if plain_ts and json_style and (type(plaintext) == "string" or type(plaintext) == "table") then
    local body, reason, message = self._eng:seal_json(plaintext, ts, style == "wecom_json")
    if body then return body end
    if body == nil then return fail(reason, message) end
  end
  if type(plaintext) == "table" and json_style then
    local text, why = cjson.encode(plaintext)
    if not text then return fail("gen_reply", "reply table cannot be encoded as JSON: " .. tostring(why)) end
    plaintext = text
  end
  local body, err = self:reply(plaintext, style, timestamp)
  if not body then return nil, err end
  return body
end

--- Builds an encrypted passive reply body. style: "mp_json" (Mini Program),
-- "wecom_json" or "xml". Returns body, encrypted, msg_signature.
function MsgCrypt:reply(plaintext, style, timestamp, nonce, random16)
  local ts, plain_ts = ts_string(timestamp or os.time())
  local enc, sig, drawn
  if not nonce and not random16 then
    if type(plaintext) ~= "string" then error("msgcrypt:reply: plaintext must be a string", 2) end
    -- the engine draws the random prefix and the nonce in one go
    local third
    enc, sig, third = self._eng:seal(plaintext, ts)
    if not enc then return fail(sig, third) end
    nonce, drawn = third, true
  else
    nonce = nonce or crypto.nonce(10)
    enc, sig = self:encrypt(plaintext, ts, nonce, random16)
    if not enc then return nil, sig end
  end
  local body
  if style == "mp_json" then
    body = json_reply(MP_KEYS, enc, sig, ts, plain_ts, nonce, drawn)
  elseif style == "wecom_json" then
    body = json_reply(WECOM_KEYS, enc, sig, ts, plain_ts, nonce, drawn)
  elseif style == "xml" then
    body = "<xml><Encrypt>" .. cdata(enc) .. "</Encrypt><MsgSignature>" .. cdata(sig) ..
        "</MsgSignature><TimeStamp>" .. ts .. "</TimeStamp><Nonce>" ..
        cdata(tostring(nonce)) .. "</Nonce></xml>"
  else
    error("msgcrypt:reply: style must be mp_json, wecom_json or xml", 2)
  end
  return body, enc, sig
end

--- Builds a pushed body as WeChat sends it (used by the emulator and tests).
function MsgCrypt:push_body(plaintext, style, timestamp, nonce, to_user)
  local enc, sig = self:encrypt(plaintext, timestamp, nonce)
  if not enc then return nil, sig end
  local body
  if style == "mp_json" then
    body = cjson.encode({ ToUserName = to_user or "", Encrypt = enc })
  elseif style == "wecom_json" then
    body = cjson.encode({ tousername = to_user or self.receive_id, encrypt = enc, agentid = "" })
  else
    body = "<xml><ToUserName>" .. cdata(to_user or "") .. "</ToUserName><Encrypt>" .. cdata(enc) .. "</Encrypt></xml>"
  end
  return body, sig
end

return M

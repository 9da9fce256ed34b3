--- WXBizMsgCrypt: message-push encryption for Mini Program / Official Account and
-- WeCom callbacks (AES-256-CBC, IV = first 16 key bytes, PKCS#7 to 32 bytes,
-- plaintext = random16 .. len(4, big-endian) .. msg .. receive_id).
-- See docs/msgcrypt.md and wechat-api.md §6.
local crypto = require "wxhw.crypto"
local errors = require "wxhw.errors"

local byte, char, concat, sort = string.byte, string.char, table.concat, table.sort
local find, sub = string.find, string.sub

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
  -- Secrets sit in underscore fields that __tostring never shows.
  return setmetatable({ receive_id = rid, _token = token, _key = aes_key, _iv = aes_key:sub(1, 16) }, MsgCrypt)
end

function MsgCrypt:__tostring()
  return "wxhw.MsgCrypt(receive_id=" .. self.receive_id .. ")"
end

-- The four signed strings in sorted order, concatenated: a sorting network
-- (same `<` as table.sort) without a table per push.
local function sorted4(a, b, c, d)
  if b < a then a, b = b, a end
  if d < c then c, d = d, c end
  if c < a then a, c = c, a end
  if d < b then b, d = d, b end
  if c < b then b, c = c, b end
  return a .. b .. c .. d
end

--- msg_signature = sha1(sort(token, timestamp, nonce, encrypted)), lowercase hex.
function MsgCrypt:signature(timestamp, nonce, encrypted)
  return crypto.hex(crypto.sha1(sorted4(self._token, tostring(timestamp), tostring(nonce), encrypted)))
end

function MsgCrypt:url_signature(timestamp, nonce)
  return M.url_signature(self._token, timestamp, nonce)
end

--- Checks the plain `signature` query parameter (plaintext mode, GET verification).
function MsgCrypt:verify_url(signature, timestamp, nonce)
  if type(signature) ~= "string" or not crypto.constant_time_equal(signature, self:url_signature(timestamp, nonce)) then
    return fail("validate_signature", "URL signature mismatch")
  end
  return true
end

local function be32(n)
  return char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

--- Decrypts after checking msg_signature; returns the inner message.
function MsgCrypt:decrypt(msg_signature, timestamp, nonce, encrypted)
  if type(encrypted) ~= "string" or encrypted == "" then return fail("parse", "missing Encrypt field") end
  if type(msg_signature) ~= "string" or
      not crypto.constant_time_equal(msg_signature, self:signature(timestamp, nonce, encrypted)) then
    return fail("validate_signature", "msg_signature mismatch")
  end
  return self:decrypt_unsigned(encrypted)
end

--- Decrypts without a signature check: only for payloads already verified.
function MsgCrypt:decrypt_unsigned(encrypted)
  local ct = crypto.base64_decode(encrypted)
  if not ct then return fail("decode_base64", "Encrypt is not valid base64") end
  if #ct == 0 or #ct % 32 ~= 0 then
    return fail("illegal_buffer", "ciphertext length " .. #ct .. " is not a positive multiple of 32")
  end
  local plain, err = crypto.aes_cbc_decrypt(self._key, self._iv, ct)
  if not plain then return fail("decrypt_aes", err.message) end
  local pad = byte(plain, #plain)
  if pad < 1 or pad > 32 then return fail("illegal_buffer", "bad padding value " .. pad) end
  for i = #plain - pad + 1, #plain do
    if byte(plain, i) ~= pad then return fail("illegal_buffer", "inconsistent padding") end
  end
  local body_end = #plain - pad
  if body_end < 20 then return fail("illegal_buffer", "plaintext too short") end
  local b1, b2, b3, b4 = byte(plain, 17, 20)
  local len = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  if len > body_end - 20 then
    return fail("illegal_buffer", "length field " .. len .. " exceeds the decrypted data")
  end
  local msg = plain:sub(21, 20 + len)
  local rid = plain:sub(21 + len, body_end)
  if rid ~= self.receive_id then
    return fail("validate_receive_id", "receive_id mismatch (message is for another app or corp)")
  end
  return msg
end

--- Encrypts a reply; `random16` (16 bytes) is for known-answer tests only.
-- Returns encrypted, msg_signature.
function MsgCrypt:encrypt(plaintext, timestamp, nonce, random16)
  if type(plaintext) ~= "string" then error("msgcrypt:encrypt: plaintext must be a string", 2) end
  random16 = random16 or crypto.nonce(16)
  if #random16 ~= 16 then error("msgcrypt:encrypt: random prefix must be 16 bytes", 2) end
  local full = random16 .. be32(#plaintext) .. plaintext .. self.receive_id
  local pad = 32 - #full % 32
  full = full .. string.rep(char(pad), pad)
  local ct, err = crypto.aes_cbc_encrypt(self._key, self._iv, full)
  if not ct then return fail("encrypt_aes", err.message) end
  local encrypted = crypto.base64_encode(ct)
  return encrypted, self:signature(timestamp, nonce, encrypted)
end

-- Envelopes ---------------------------------------------------------------

local cjson = require "cjson.safe"

local function xml_field(xml, name)
  local v = xml:match("<" .. name .. ">%s*<!%[CDATA%[(.-)%]%]>%s*</" .. name .. ">")
  return v or xml:match("<" .. name .. ">([^<]*)</" .. name .. ">")
end
M.xml_field = xml_field

local function cdata(s) return "<![CDATA[" .. s:gsub("%]%]>", "]]]]><![CDATA[>") .. "]]>" end

--- Extracts the Encrypt field of a pushed body: JSON (Mini Program `Encrypt`,
-- WeCom `encrypt`) or XML. Returns encrypted, format ("json" | "xml").
function M.envelope_encrypt(raw_body)
  if type(raw_body) ~= "string" then error("envelope_encrypt: raw body string required", 2) end
  local first = raw_body:match("^%s*(.)")
  if first == "{" then
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
  local enc, fmt = M.envelope_encrypt(raw_body)
  if not enc then return nil, fmt end
  local msg, err = self:decrypt(query.msg_signature, query.timestamp, query.nonce, enc)
  if not msg then return nil, err end
  return msg, fmt
end

local MP_KEYS = { '{"Encrypt":"', '","MsgSignature":"', '","TimeStamp":', ',"Nonce":"', "Encrypt", "MsgSignature",
                  "TimeStamp", "Nonce" }
local WECOM_KEYS = { '{"encrypt":"', '","msgsignature":"', '","timestamp":', ',"nonce":"', "encrypt", "msgsignature",
                     "timestamp", "nonce" }

-- The JSON reply object, concatenated when every value is plain (base64, hex,
-- digits, [A-Za-z0-9] nonce: nothing to escape), else through cjson.
local function json_reply(k, enc, sig, timestamp, nonce)
  timestamp, nonce = tostring(timestamp), tostring(nonce)
  if find(timestamp, "^[1-9]%d*$") and find(nonce, "^%w*$") then
    return k[1] .. enc .. k[2] .. sig .. k[3] .. timestamp .. k[4] .. nonce .. '"}'
  end
  return cjson.encode({ [k[5]] = enc, [k[6]] = sig, [k[7]] = tonumber(timestamp), [k[8]] = nonce })
end

--- Builds an encrypted passive reply body. style: "mp_json" (Mini Program),
-- "wecom_json" or "xml". Returns body, encrypted, msg_signature.
function MsgCrypt:reply(plaintext, style, timestamp, nonce, random16)
  timestamp = timestamp or os.time()
  if not nonce and not random16 then
    -- one draw for both (the random source costs more than the bytes)
    local r = crypto.nonce(26)
    random16, nonce = sub(r, 1, 16), sub(r, 17)
  end
  nonce = nonce or crypto.nonce(10)
  local enc, sig = self:encrypt(plaintext, timestamp, nonce, random16)
  if not enc then return nil, sig end
  local body
  if style == "mp_json" then
    body = json_reply(MP_KEYS, enc, sig, timestamp, nonce)
  elseif style == "wecom_json" then
    body = json_reply(WECOM_KEYS, enc, sig, timestamp, nonce)
  elseif style == "xml" then
    body = "<xml><Encrypt>" .. cdata(enc) .. "</Encrypt><MsgSignature>" .. cdata(sig) ..
        "</MsgSignature><TimeStamp>" .. tostring(timestamp) .. "</TimeStamp><Nonce>" ..
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

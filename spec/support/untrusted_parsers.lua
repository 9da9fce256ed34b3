--- The Lua code that reads bytes from the network before anything is
-- authenticated, each as a function(bytes) for the Lua fuzz run
-- (fuzz/lua_parsers.lua). A call must return (a value or nil, err): raising
-- on garbage is a bug. The timed adversarial cases are in
-- spec/hostile_input_spec.lua.
local callback = require "wxhw.callback"
local msgcrypt = require "wxhw.msgcrypt"
local json = require "wxhw.json"
local verify = require "wxhw.pay.verify"
local frame = require "wxhw.relay.frame"

local TOKEN, KEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"
local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
local Q = { timestamp = "1714112445", nonce = "n", msg_signature = ("0"):rep(40), encrypt_type = "aes" }
local function clock() return 1714112445 end
local WIDE = 4 * 1048576 -- endpoints read the fuzz inputs whole (the 413 cap is tested elsewhere)
local mp = callback.mini_program{ token = TOKEN, encoding_aes_key = KEY, appid = APPID, clock = clock,
                                  max_body = WIDE, dedup = false, allow_plaintext = true,
                                  handlers = { default = function() return true end } }
local wecom = callback.wecom{ token = TOKEN, encoding_aes_key = KEY, receive_id = "ww1", clock = clock,
                              max_body = WIDE, dedup = false }

-- "name: value" lines of the input as a header table (any case, repeats kept as lists)
local function header_table(s)
  local h = {}
  for line in s:gmatch("[^\n]+") do
    local name, value = line:match("^([^:]*):(.*)$") -- anchored: an unanchored search is quadratic
    local cur = name and h[name]
    if not name then -- luacheck: ignore
    elseif cur == nil then h[name] = value
    elseif type(cur) == "table" then cur[#cur + 1] = value
    else h[name] = { cur, value } end
  end
  return h
end

local function no_key() return verify.fail("unknown_serial", "no key") end

return {
  { name = "msgcrypt.envelope_encrypt", call = msgcrypt.envelope_encrypt },
  { name = "MsgCrypt:open", call = function(s) return mc:open(Q, s) end },
  { name = "callback.parse_query", call = callback.parse_query },
  { name = "callback.parse_xml", call = callback.parse_xml },
  { name = "wxhw.json.decode", call = json.decode },
  { name = "mini_program endpoint (secure)", call = function(s) return mp("POST", Q, {}, s) end },
  { name = "mini_program endpoint (plaintext)", call = function(s)
      local q = { timestamp = Q.timestamp, nonce = Q.nonce, signature = mc:url_signature(Q.timestamp, Q.nonce) }
      return mp("POST", q, {}, s)
    end },
  { name = "mini_program endpoint (query)", call = function(s) return mp("GET", callback.parse_query(s), {}, "") end },
  { name = "wecom endpoint", call = function(s) return wecom("POST", Q, {}, s) end },
  { name = "pay.verify headers (values)", call = function(s)
      local h = { ["wechatpay-timestamp"] = s, ["wechatpay-nonce"] = s, ["wechatpay-signature"] = s,
                  ["wechatpay-serial"] = s, ["wechatpay-signature-type"] = s }
      return verify.verify(h, s, 1714112445, no_key)
    end },
  { name = "pay.verify headers (lines)", call = function(s)
      return verify.verify(header_table(s), s, 1714112445, no_key)
    end },
  -- a device's stream into the relay, read before its hello is checked
  { name = "relay frame decoder", call = function(s)
      local frames = frame.decoder():push(s)
      for _, fr in ipairs(frames or {}) do frame.decode_control(fr) end
      return frames
    end },
}

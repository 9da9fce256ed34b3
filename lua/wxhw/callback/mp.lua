--- Mini Program message push endpoint (wxhw.callback.mini_program).
local E = require "wxhw.callback.endpoint"
local cjson = require "cjson.safe"
local clock = require "wxhw.clock"
local dedup_mod = require "wxhw.callback.dedup"
local plain, refuse, with_headers, skew_ok = E.plain, E.refuse, E.with_headers, E.skew_ok
local make_dedup, endpoint, once, with_ctype = E.make_dedup, E.endpoint, E.once, E.with_ctype
local common_opts, mc_or_raise, handler_result, encrypted_reply = E.common_opts, E.mc_or_raise, E.handler_result, E.encrypted_reply
local handler_for, decode_message, TEXT, JSON = E.handler_for, E.decode_message, E.TEXT, E.JSON
local call_handler, handler_failed = E.call_handler, E.handler_failed

local M = {}

-- Mini Program message push -----------------------------------------------

-- The answer to the cloud-to-cloud VoIP push is the plaintext JSON
-- {"errcode":0,"errmsg":"ok"} (non-zero cancels the call), never encrypted,
-- whatever the push's format (miniprogram/dev/framework/device/voip/
-- cloud-server-sdk): an encrypted envelope has no top-level errcode.
local VOIP_OK = '{"errcode":0,"errmsg":"ok"}'

local BAD_VOIP = "iot_voip_notify handler must return { errcode = integer, errmsg = string }"

local function voip_reply(info, what, result, reply)
  if what == "ack" then return 200, JSON["Content-Type"], VOIP_OK end
  if type(result) == "table" then
    -- read raw: a reply table's metamethods are not ours to run
    local code, msg = rawget(result, "errcode"), rawget(result, "errmsg")
    -- integers both runtimes print exactly
    if type(code) ~= "number" or code % 1 ~= 0 or code < -2 ^ 53 or code > 2 ^ 53 then
      return handler_failed(info, BAD_VOIP)
    end
    if msg ~= nil and type(msg) ~= "string" then return handler_failed(info, BAD_VOIP) end
    -- errcode first, as the doc prints it
    reply = ('{"errcode":%.0f,"errmsg":%s}'):format(code, cjson.encode(msg or ""))
  end
  return 200, JSON["Content-Type"], reply
end

-- The handler's run: c = { o, mc }, fn = the event's handler.
local function mp_run(c, info, fn, msg, ctx)
  -- handler_ms is for the on_event hook only: no clock reads without one
  local t0 = c.o.on_event and clock.monotonic()
  local r1, r2 = call_handler(info, fn, msg, ctx)
  local fmt = ctx.format
  -- a reply table for a secure JSON push is sealed from the table
  -- (wxhw.msgcrypt reply_body): no JSON string is made for it in Lua (the
  -- VoIP answer is built from the table by voip_reply)
  local what, reply
  -- (and the VoIP answer is built from the table by voip_reply, in any format)
  if type(r1) == "table" and (fmt == "json" and ctx.secure or ctx.event == "iot_voip_notify") then
    what, reply = "reply", r1
  else what, reply = handler_result(r1, r2, fmt) end
  if t0 then info.handler_ms = (clock.monotonic() - t0) * 1000 end
  info.dispatched = true
  if what == "fail" then return handler_failed(info, reply) end
  if ctx.event == "iot_voip_notify" then return voip_reply(info, what, r1, reply) end
  if what == "ack" or reply == "" or reply == "success" or not ctx.secure then
    return 200, TEXT["Content-Type"], reply or "success"
  end
  return encrypted_reply(c, info, reply, fmt, "mp_json")
end

local function mp_request(c, info, method, query, headers, raw_body)
  local o, mc = c.o, c.mc
  if not skew_ok(o, query.timestamp) then return refuse(info, 403, "stale_timestamp", "stale or missing timestamp") end
  if method == "GET" then
    if not query.echostr then return refuse(info, 400, "missing_parameter", "missing echostr") end
    if not mc:verify_url(query.signature, query.timestamp, query.nonce) then
      return refuse(info, 403, "bad_signature", "signature mismatch")
    end
    info.event = "url_verification"
    return 200, TEXT, query.echostr
  elseif method ~= "POST" then
    return refuse(info, 405, "method_not_allowed", "method not allowed")
  end
  if type(raw_body) ~= "string" or raw_body == "" then return refuse(info, 400, "empty_body", "empty body") end
  local secure = query.encrypt_type == "aes" or query.msg_signature ~= nil
  local plaintext
  if secure then
    if not query.msg_signature or not query.nonce then return refuse(info, 400, "missing_parameter", "missing msg_signature or nonce") end
    local msg, err = mc:open(query, raw_body)
    if not msg then
      info.reason = err.reason
      return plain(err.reason == "validate_signature" and 403 or
                   err.reason == "validate_receive_id" and 403 or 400, err.message)
    end
    plaintext = msg
  else
    if not o.allow_plaintext then return refuse(info, 403, "plaintext_refused", "plaintext pushes are not accepted (use secure mode)") end
    if not mc:verify_url(query.signature, query.timestamp, query.nonce) then
      return refuse(info, 403, "bad_signature", "signature mismatch")
    end
    plaintext = raw_body
  end
  local msg, fmt = decode_message(plaintext)
  if not msg then return refuse(info, 400, "bad_message", "decrypted message is neither JSON nor XML") end
  local event = msg.MsgType == "event" and msg.Event or msg.MsgType
  info.event = event
  if type(event) ~= "string" or event == "" then return refuse(info, 400, "no_event", "message has no MsgType/Event") end
  if event == "iot_voip_notify" and not secure then
    return refuse(info, 403, "plaintext_refused", "iot_voip_notify must arrive in secure mode")
  end
  local fn, status, h, body = handler_for(o, info, event)
  if not fn then return status, h, body end
  local key = dedup_mod.key("mp", msg.MsgId, plaintext, o.appid)
  local ctx = with_headers({ kind = "mp", event = event, format = fmt, query = query, plaintext = plaintext,
                             secure = secure }, headers)
  return with_ctype(once(c.dd, key, info, mp_run, c, fn, msg, ctx))
end

--- opts: token, encoding_aes_key, appid; handlers = { [Event or MsgType] =
-- function(msg, ctx) ... end, default = ... }; allow_plaintext (false);
-- max_skew (300 s, false = off); clock (os.time; ngx.time in nginx); dedup ({store, ttl, wait, sleep} |
-- false); unknown ("reject" | "ack"); on_event(info).
function M.mini_program(o)
  common_opts(o, "callback.mini_program")
  local c = { o = o, mc = mc_or_raise(o, o.appid, "callback.mini_program"), dd = make_dedup(o) }
  return endpoint(o, "mp", mp_request, c)
end

return M

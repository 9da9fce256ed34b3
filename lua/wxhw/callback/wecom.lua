--- WeCom hardware (openhw) callback endpoint (wxhw.callback.wecom).
local E = require "wxhw.callback.endpoint"
local clock = require "wxhw.clock"
local dedup_mod = require "wxhw.callback.dedup"
local plain, refuse, with_headers, skew_ok = E.plain, E.refuse, E.with_headers, E.skew_ok
local make_dedup, endpoint, once, with_ctype = E.make_dedup, E.endpoint, E.once, E.with_ctype
local common_opts, mc_or_raise, handler_result, encrypted_reply = E.common_opts, E.mc_or_raise, E.handler_result, E.encrypted_reply
local handler_for, decode_message, TEXT = E.handler_for, E.decode_message, E.TEXT

local M = {}

-- WeCom hardware (openhw) callbacks ----------------------------------------

-- Reply deadlines: bind 3000 ms (doc 95987); model_ticket, unbind,
-- verify_device (96130) and every device command (user_scan: 97390) 1000 ms.
M.wecom_deadlines = { model_ticket = 1.0, bind = 3.0, unbind = 1.0, verify_device = 1.0,
  fetch_device_status = 1.0, update_firmware = 1.0, enter_page = 1.0, exit_page = 1.0, remote_open_door = 1.0,
  user_scan = 1.0 }

local function wecom_run(c, info, fn, msg, ctx)
  local t0 = clock.monotonic()
  local r1, r2 = E.call_handler(info, fn, msg, ctx)
  local fmt = ctx.format
  -- a reply table for a JSON push is sealed from the table (wxhw.msgcrypt
  -- reply_body): no JSON string is made for it in Lua
  local what, reply
  if type(r1) == "table" and fmt == "json" then what, reply = "reply", r1
  else what, reply = handler_result(r1, r2, fmt) end
  local took = clock.monotonic() - t0
  info.handler_ms, info.dispatched = took * 1000, true
  if ctx.deadline and took > ctx.deadline then info.late = true end
  if what == "fail" then return E.handler_failed(info, reply) end
  if what == "ack" or reply == "" or reply == "success" then return 200, TEXT["Content-Type"], "success" end
  return encrypted_reply(c, info, reply, fmt, "wecom_json")
end

local function wecom_request(c, info, method, query, headers, raw_body)
  local o, mc = c.o, c.mc
  if not query.msg_signature or not query.nonce then return refuse(info, 400, "missing_parameter", "missing msg_signature or nonce") end
  if not skew_ok(o, query.timestamp) then return refuse(info, 403, "stale_timestamp", "stale or missing timestamp") end
  if method == "GET" then
    if not query.echostr then return refuse(info, 400, "missing_parameter", "missing echostr") end
    local echo, err = mc:decrypt(query.msg_signature, query.timestamp, query.nonce, query.echostr)
    if not echo then
      info.reason = err.reason
      return plain(err.reason == "validate_signature" and 403 or 400, err.message)
    end
    info.event = "url_verification"
    return 200, TEXT, echo
  elseif method ~= "POST" then
    return refuse(info, 405, "method_not_allowed", "method not allowed")
  end
  if type(raw_body) ~= "string" or raw_body == "" then return refuse(info, 400, "empty_body", "empty body") end
  local plaintext, err = mc:open(query, raw_body)
  if not plaintext then
    info.reason = err.reason
    return plain((err.reason == "validate_signature" or err.reason == "validate_receive_id") and 403 or 400,
                 err.message)
  end
  local msg, fmt = decode_message(plaintext)
  if not msg then return refuse(info, 400, "bad_message", "decrypted message is neither JSON nor XML") end
  -- events name themselves in event.event_type, device commands (msg_type
  -- "command") in command.command_type
  local ev = type(msg.event) == "table" and msg.event.event_type
    or type(msg.command) == "table" and msg.command.command_type or msg.Event or msg.event
  if type(ev) ~= "string" then return refuse(info, 400, "no_event", "message has no event type") end
  info.event = ev
  local fn, status, h, body = handler_for(o, info, ev)
  if not fn then return status, h, body end
  local base = type(msg.base_info) == "table" and msg.base_info or {}
  local key = dedup_mod.key("wecom", base.req_id, plaintext, o.receive_id)
  local ctx = with_headers({ kind = "wecom", format = fmt, query = query, plaintext = plaintext,
                             deadline = c.deadlines[ev] }, headers)
  return with_ctype(once(c.dd, key, info, wecom_run, c, fn, msg, ctx))
end

--- opts: token, encoding_aes_key, receive_id (the service corpid / suite id
-- the callback is encrypted for); handlers = { model_ticket, bind, unbind,
-- verify_device, <command_type>..., default }; as for mini_program
-- otherwise. A handler that runs past the event's deadline is reported with
-- info.late = true.
function M.wecom(o)
  common_opts(o, "callback.wecom")
  local c = { o = o, mc = mc_or_raise(o, o.receive_id, "callback.wecom"), dd = make_dedup(o),
              deadlines = setmetatable(o.deadlines or {}, { __index = M.wecom_deadlines }) }
  return endpoint(o, "wecom", wecom_request, c)
end

return M

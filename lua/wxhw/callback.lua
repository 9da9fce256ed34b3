--- Callback gateway: plain request handlers for what WeChat, WeCom and WeChat
-- Pay push to a vendor. Each constructor returns a function
--
--     handler(method, query, headers, raw_body) --> status, headers, body
--
-- that any server can call: the OpenResty adapter (wxhw.callback.ngx), the
-- small Lua 5.4 server (wxhw.httpserver), or a test. `query` is a table of
-- decoded query parameters, `headers` a table (any key case), `raw_body` the
-- exact bytes received (signatures are checked on them).
--
--   callback.mini_program{ token, encoding_aes_key, appid, handlers = {...} }
--   callback.wecom{ token, encoding_aes_key, receive_id, handlers = {...} }
--   callback.pay{ pay = wxhw.pay client, handler = function(notification) end }
--   callback.router{ ["/path"] = handler, ... }
--
-- See docs/callback.md for reply conventions and status codes.
local cjson = require "cjson.safe"
local json = require "wxhw.json"
local msgcrypt = require "wxhw.msgcrypt"
local errors = require "wxhw.errors"
local dedup_mod = require "wxhw.callback.dedup"
local refusals_mod = require "wxhw.callback.refusals"
local clock = require "wxhw.clock"
local url = require "wxhw.url"

local M = {}

local TEXT = { ["Content-Type"] = "text/plain; charset=utf-8" }
local JSON = { ["Content-Type"] = "application/json" }
local XML = { ["Content-Type"] = "application/xml" }

local function plain(status, msg) return status, TEXT, msg end

-- The shared reply header tables hold only a Content-Type: a server sets
-- that one header without walking the table (a loop there ended LuaJIT's
-- trace of every request in the nginx adapter).
local SHARED_HEADERS = { [TEXT] = true, [JSON] = true, [XML] = true }

--- The Content-Type of `h` when it is one of the header tables replies
-- share (nil for any other table: walk that one).
function M.shared_content_type(h)
  if SHARED_HEADERS[h] then return h["Content-Type"] end
  return nil
end

-- A refusal: `reason` (a fixed code, no input in it) goes to the on_event
-- info, the refusal log and the metrics.
local function refuse(info, status, reason, msg)
  info.reason = reason
  return status, TEXT, msg
end

-- helpers ---------------------------------------------------------------

--- "a=1&b=%2F" --> { a = "1", b = "/" } (wxhw.url.parse_query).
M.parse_query = url.parse_query

-- Request headers read on first use. A server whose header table costs
-- something to build (nginx: ngx.req.get_headers, ~0.5 µs and a table per
-- request) passes M.lazy_headers(loader); endpoints that need the headers
-- themselves (Pay) resolve it at once, the others only if a handler reads
-- ctx.headers. ctx.headers is then a plain table (pairs works, also under
-- LuaJIT, which has no __pairs).
local LAZY = setmetatable({}, { __tostring = function() return "lazy headers" end })

function M.lazy_headers(loader) return { [LAZY] = loader } end

-- The handlers made here, which accept a lazy_headers marker; a server
-- passes any other handler a real header table.
local TAKES_LAZY = setmetatable({}, { __mode = "k" })
function M.takes_lazy_headers(handler) return TAKES_LAZY[handler] == true end

local function resolve_headers(headers)
  local loader = type(headers) == "table" and headers[LAZY]
  if loader then return loader() end
  return headers
end

local LAZY_CTX = { __index = function(ctx, k)
  if k ~= "headers" then return nil end
  local h = rawget(ctx, LAZY)()
  rawset(ctx, "headers", h)
  return h
end }

-- ctx for a handler: `headers` stays unread until the handler asks.
local function with_headers(ctx, headers)
  local loader = type(headers) == "table" and headers[LAZY]
  if not loader then
    ctx.headers = headers
    return ctx
  end
  ctx[LAZY] = loader
  return setmetatable(ctx, LAZY_CTX)
end

--- Header lookup in any case (a lazy_headers marker is resolved first).
local function header(headers, name) return url.header(resolve_headers(headers), name) end
M.header = header


local function unwrap(v)
  local c = v:match("^%s*<!%[CDATA%[(.-)%]%]>%s*$")
  if c then return c end
  return (v:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&apos;", "'"):gsub("&amp;", "&"))
end

--- Flat XML (<xml><A>..</A><B><![CDATA[..]]></B></xml>) --> table of strings.
-- Nested elements are kept as their inner XML text.
function M.parse_xml(s)
  local inner = s:match("^%s*<xml>(.*)</xml>%s*$")
  if not inner then return nil end
  local t, n, pos = {}, 0, 1
  while true do
    local a, b, name = inner:find("<([%w_]+)>", pos)
    if not a then break end
    local close = "</" .. name .. ">"
    local c, d = inner:find(close, b + 1, true)
    if not c then return nil end
    t[name] = unwrap(inner:sub(b + 1, c - 1))
    n, pos = n + 1, d + 1
  end
  if n == 0 then return nil end
  return t
end

local function cdata(s) return "<![CDATA[" .. tostring(s):gsub("%]%]>", "]]]]><![CDATA[>") .. "]]>" end

--- Flat table --> <xml>…</xml> (keys sorted so replies are reproducible).
function M.encode_xml(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = { "<xml>" }
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "number" then out[#out + 1] = "<" .. k .. ">" .. tostring(v) .. "</" .. k .. ">"
    else out[#out + 1] = "<" .. k .. ">" .. cdata(v) .. "</" .. k .. ">" end
  end
  out[#out + 1] = "</xml>"
  return table.concat(out)
end

local byte = string.byte

local function decode_message(plaintext)
  -- the first byte decides without a pattern (string.match is not compiled
  -- by LuaJIT); leading whitespace takes the pattern
  local b = byte(plaintext, 1)
  local first = b == 123 and "{" or b == 60 and "<" or plaintext:match("^%s*(.)")
  if first == "{" then
    local t = json.decode(plaintext) -- MsgId is a 64-bit integer
    if type(t) == "table" then return t, "json" end
  elseif first == "<" then
    local t = M.parse_xml(plaintext)
    if t then return t, "xml" end
  end
  return nil
end

local function skew_ok(o, ts)
  if not o.max_skew then return true end
  local n = tonumber(ts)
  if not n then return false end
  return math.abs(o.clock() - n) <= o.max_skew
end

local function make_dedup(o)
  if o.dedup == false then return nil end
  if getmetatable(o.dedup) == dedup_mod then return o.dedup end
  return dedup_mod.new(o.dedup or {})
end

local function emit(o, info)
  if o.on_event then pcall(o.on_event, info) end
end

-- One endpoint per product: the request function answers, the info table it
-- fills goes to the on_event hook. Without a hook nothing reads info, so one
-- scratch table takes the writes (a fresh one grows its hash part 3 times).
--
-- A body over max_body is answered 413 before a byte of it is parsed: it
-- arrives before any signature check (a push is a few KB).
M.MAX_BODY = 65536
local MAX_BODY = setmetatable({}, { __mode = "k" })

--- The body limit of a handler made here (nil for any other function):
-- servers refuse a larger Content-Length before reading the body.
function M.max_body(handler) return MAX_BODY[handler] end

local REFUSED = setmetatable({}, { __mode = "k" })
--- A server that refused a request for `handler` without calling it (a
-- declared length over max_body) reports it here, so the endpoint's refusal
-- log and on_event hook see it. A no-op for other functions.
function M.refused(handler, reason, status)
  local note = REFUSED[handler]
  if note then note(reason, status) end
end

local function too_large(kind, limit)
  local msg = "body larger than " .. limit .. " bytes"
  if kind == "pay" then return 413, JSON, cjson.encode({ code = "FAIL", message = msg }) end
  return plain(413, msg)
end

-- The on_event info table: sized for the fields a push sets (kind, event,
-- status, dispatched, handler_ms, reason...), so filling it does not grow
-- its hash part three times (LuaJIT's table.new; a plain table elsewhere).
local new_table = select(2, pcall(require, "table.new"))
if type(new_table) ~= "function" then new_table = function() return {} end end

local function new_info(kind)
  local info = new_table(0, 8)
  info.kind = kind
  return info
end

local function endpoint(o, kind, request, c)
  local scratch = { kind = kind }
  local limit = o.max_body == nil and M.MAX_BODY or o.max_body
  if type(limit) ~= "number" or limit < 1 then error("callback: max_body must be a positive number", 3) end
  local refusals = o.log_refusals
  if refusals == nil then refusals = refusals_mod.default() end
  local fn = function(method, query, headers, raw_body)
    local info = o.on_event and new_info(kind) or scratch
    scratch.reason = nil
    local status, h, body
    if type(raw_body) == "string" and #raw_body > limit then
      info.reason = "body_too_large"
      status, h, body = too_large(kind, limit)
    else
      status, h, body = request(c, info, method, query or {}, headers, raw_body)
    end
    info.status = status
    -- a refusal (4xx: nothing dispatched) is logged, rate-limited
    if refusals and status >= 400 and status < 500 then refusals:note(kind, info.reason or status, status) end
    emit(o, info)
    return status, h, body
  end
  TAKES_LAZY[fn] = true
  MAX_BODY[fn] = limit
  -- for a server that refuses a request before calling fn (M.refused)
  REFUSED[fn] = function(reason, status)
    local info = o.on_event and { kind = kind } or scratch
    info.reason, info.status = reason, status
    if refusals then refusals:note(kind, reason, status) end
    emit(o, info)
  end
  return fn
end

-- Runs `run(c, info, fn, msg, ctx)` once per distinct push; it returns
-- status, ctype, body and `cache` (false for failures the sender should
-- retry). No closures are made per request: LuaJIT cannot compile a trace
-- through a function definition, and the gateway's hot path should be traced.
local function once(dd, key, info, run, c, fn, msg, ctx)
  if not dd then
    local status, ctype, body = run(c, info, fn, msg, ctx)
    return status, ctype, body
  end
  local state, a, b, d = dd:claim(key)
  if state == "dup" then
    info.duplicate = true
    return a, b, d
  elseif state == "busy" then
    info.duplicate = true
    return 503, TEXT["Content-Type"], "duplicate push still being handled"
  elseif state == nil then
    -- the store is down or full: handle the push unguarded (a copy may run
    -- the handler again) rather than answer 500, which lost every push and
    -- its retransmissions for the whole outage
    info.dedup_error = errors.is(a) and a.message or tostring(a)
    local status, ctype, body = run(c, info, fn, msg, ctx)
    return status, ctype, body
  end
  local ok, status, ctype, body, cache = pcall(run, c, info, fn, msg, ctx)
  if not ok then
    dd:abandon(key)
    info.error = tostring(status)
    return 500, TEXT["Content-Type"], "handler failed"
  end
  if cache == false then
    dd:abandon(key)
  elseif not dd:done(key, status, ctype, body) then
    info.reply_not_kept = true
  end
  return status, ctype, body
end

-- Replies share one headers table per content type (read-only for servers).
local BY_CTYPE = { [TEXT["Content-Type"]] = TEXT, [JSON["Content-Type"]] = JSON, [XML["Content-Type"]] = XML }

local function with_ctype(status, ctype, body)
  if not ctype then return status, {}, body end
  return status, BY_CTYPE[ctype] or { ["Content-Type"] = ctype }, body
end

local function common_opts(o, name)
  if type(o) ~= "table" then error(name .. ": options table required", 3) end
  -- inside nginx, its cached clock: an FFI call LuaJIT compiles, where
  -- os.time is a C function that ends the trace
  local ngx_ = rawget(_G, "ngx")
  o.clock = o.clock or (type(ngx_) == "table" and ngx_.time) or os.time
  if o.max_skew == nil then o.max_skew = 300 end
  o.handlers = o.handlers or {}
  -- an event no handler wants is acknowledged by default: a 4xx makes
  -- WeChat retransmit it (3 times) for nothing
  o.unknown = o.unknown or "ack"
  if o.unknown ~= "reject" and o.unknown ~= "ack" then error(name .. ": unknown must be 'reject' or 'ack'", 3) end
end

local function mc_or_raise(o, rid, name)
  local mc, err = msgcrypt.new{ token = o.token, encoding_aes_key = o.encoding_aes_key, receive_id = rid }
  if not mc then error(name .. ": " .. err.message, 3) end
  return mc
end

-- Result of a handler --> status, ctype, plaintext-or-nil, cache.
-- nil/true: acknowledged; string/table: a reply to encrypt; false or
-- nil, err: failure, not cached, so WeChat's retransmission runs it again.
local function handler_result(ok_or_reply, err, fmt)
  if ok_or_reply == false or (ok_or_reply == nil and err ~= nil) then return "fail" end
  if ok_or_reply == nil or ok_or_reply == true then return "ack" end
  if type(ok_or_reply) == "string" then return "reply", ok_or_reply end
  if type(ok_or_reply) == "table" then
    if fmt == "xml" then return "reply", M.encode_xml(ok_or_reply) end
    return "reply", assert(cjson.encode(ok_or_reply))
  end
  error("callback handler returned a " .. type(ok_or_reply), 0)
end

-- A handler's reply as the passive encrypted answer, in the push's format
-- (XML, or the product's JSON style); a failure is not cached.
local function encrypted_reply(c, reply, fmt, json_style)
  local rbody, err = c.mc:reply(reply, fmt == "xml" and "xml" or json_style, c.o.clock())
  if not rbody then return 500, TEXT["Content-Type"], err.message, false end
  return 200, (fmt == "xml" and XML or JSON)["Content-Type"], rbody
end

-- The handler for an event (or the default one); without one, the answer
-- the `unknown` option asks for.
local function handler_for(o, info, event)
  local fn = o.handlers[event] or o.handlers.default
  if fn then return fn end
  info.unknown = true
  if o.unknown == "ack" then return nil, 200, TEXT, "success" end
  return nil, refuse(info, 400, "unknown_event", "no handler for event " .. event)
end

-- Mini Program message push -----------------------------------------------

-- The answer to the cloud-to-cloud VoIP push is the plaintext JSON
-- {"errcode":0,"errmsg":"ok"} (non-zero cancels the call), never encrypted,
-- whatever the push's format (miniprogram/dev/framework/device/voip/
-- cloud-server-sdk): an encrypted envelope has no top-level errcode.
local VOIP_OK = '{"errcode":0,"errmsg":"ok"}'

local function voip_reply(what, result, reply)
  if what == "ack" then return 200, JSON["Content-Type"], VOIP_OK end
  if type(result) == "table" then
    local code = result.errcode
    if type(code) ~= "number" or code % 1 ~= 0 then
      error("iot_voip_notify handler must return { errcode = integer, errmsg = string }", 0)
    end
    -- errcode first, as the doc prints it
    reply = ('{"errcode":%d,"errmsg":%s}'):format(code, cjson.encode(tostring(result.errmsg or "")))
  end
  return 200, JSON["Content-Type"], reply
end

-- The handler's run: c = { o, mc }, fn = the event's handler.
local function mp_run(c, info, fn, msg, ctx)
  -- handler_ms is for the on_event hook only: no clock reads without one
  local t0 = c.o.on_event and clock.monotonic()
  local r1, r2 = fn(msg, ctx)
  local fmt = ctx.format
  local what, reply = handler_result(r1, r2, fmt)
  if t0 then info.handler_ms = (clock.monotonic() - t0) * 1000 end
  info.dispatched = true
  if what == "fail" then return 500, TEXT["Content-Type"], "handler failed", false end
  if ctx.event == "iot_voip_notify" then return voip_reply(what, r1, reply) end
  if what == "ack" or reply == "" or reply == "success" or not ctx.secure then
    return 200, TEXT["Content-Type"], reply or "success"
  end
  return encrypted_reply(c, reply, fmt, "mp_json")
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
  local key = dedup_mod.key("mp", msg.MsgId, plaintext)
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

-- WeCom hardware (openhw) callbacks ----------------------------------------

-- Reply deadlines: bind 3000 ms (doc 95987); model_ticket, unbind,
-- verify_device (96130) and every device command (user_scan: 97390) 1000 ms.
M.wecom_deadlines = { model_ticket = 1.0, bind = 3.0, unbind = 1.0, verify_device = 1.0,
  fetch_device_status = 1.0, update_firmware = 1.0, enter_page = 1.0, exit_page = 1.0, remote_open_door = 1.0,
  user_scan = 1.0 }

local function wecom_run(c, info, fn, msg, ctx)
  local t0 = clock.monotonic()
  local r1, r2 = fn(msg, ctx)
  local fmt = ctx.format
  local what, reply = handler_result(r1, r2, fmt)
  local took = clock.monotonic() - t0
  info.handler_ms, info.dispatched = took * 1000, true
  if ctx.deadline and took > ctx.deadline then info.late = true end
  if what == "fail" then return 500, TEXT["Content-Type"], "handler failed", false end
  if what == "ack" or reply == "" or reply == "success" then return 200, TEXT["Content-Type"], "success" end
  return encrypted_reply(c, reply, fmt, "wecom_json")
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
  local key = dedup_mod.key("wecom", base.req_id, plaintext)
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

-- WeChat Pay notifications ---------------------------------------------------

local function pay_fail(status, message)
  return status, JSON, cjson.encode({ code = "FAIL", message = message })
end

local function pay_run(_, info, fn, n, ctx)
  local r1, r2 = fn(n, ctx)
  local what = handler_result(r1, r2)
  info.dispatched = true
  if what == "fail" then
    return 500, JSON["Content-Type"], cjson.encode({ code = "FAIL", message = "handler failed" }), false
  end
  return 204, nil, ""
end

local function pay_request(c, info, method, _, headers, raw_body)
  headers = resolve_headers(headers)
  local o, dd = c.o, c.dd
  if method ~= "POST" then info.reason = "method_not_allowed"; return pay_fail(405, "method not allowed") end
  if type(raw_body) ~= "string" or raw_body == "" then info.reason = "empty_body"; return pay_fail(400, "empty body") end
  local n, err = o.pay:notification(headers or {}, raw_body)
  if not n then
    local reason = errors.is(err) and (err.reason or err.kind) or tostring(err)
    info.reason = reason
    -- the same signed copy again (a retry of a handled notification):
    -- answer as the first time rather than make WeChat Pay retry forever
    if reason == "replay" and dd then
      local ev = cjson.decode(raw_body)
      local id = type(ev) == "table" and ev.id or nil
      local v = id and dd.store:get(dd.prefix .. dedup_mod.key("pay", id, raw_body))
      if v and dedup_mod.is_done(v) then
        info.duplicate = true
        return with_ctype(dedup_mod.decode(v))
      end
    end
    return pay_fail((reason == "bad_resource" or reason == "input") and 400 or 401,
                    errors.is(err) and err.message or "notification rejected")
  end
  info.event = type(n) == "table" and n.event_type or nil
  local key = dedup_mod.key("pay", type(n) == "table" and n.id or nil, raw_body)
  return with_ctype(once(dd, key, info, pay_run, c, o.handler, n,
                         { kind = "pay", headers = headers, raw_body = raw_body }))
end

--- opts: pay (a wxhw.pay client: pay:notification(headers, raw_body) -->
-- notification | nil, err), handler(notification, ctx) (nil/true = handled;
-- false or nil, err = failed, WeChat Pay retries), dedup, on_event.
-- Verification (signature, serial, skew, SIGNTEST probes, replays) is the
-- Pay module's; this adapter only maps its outcome to HTTP.
function M.pay(o)
  if type(o) ~= "table" or o.pay == nil or type(o.handler) ~= "function" then
    error("callback.pay: options { pay = client, handler = function } required", 2)
  end
  local c = { o = o, dd = make_dedup(o) }
  return endpoint(o, "pay", pay_request, c)
end

-- routing ---------------------------------------------------------------

--- routes: { ["/path"] = handler }. Returns handler(method, path, query,
-- headers, raw_body); unknown paths get 404.
function M.router(routes)
  return function(method, path, query, headers, raw_body)
    local fn = routes[path]
    if not fn then return 404, TEXT, "not found" end
    return fn(method, query, headers, raw_body)
  end
end

return M

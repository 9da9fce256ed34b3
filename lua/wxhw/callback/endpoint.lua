--- The machinery every callback endpoint shares (wxhw.callback.mp, .wecom,
-- .pay): reply header tables, refusals, lazy request headers, the endpoint
-- wrapper (body limit, refusal log, on_event), de-duplicated runs (once),
-- handler results and encrypted replies. Internal: users require
-- wxhw.callback.
local cjson = require "cjson.safe"
local json = require "wxhw.json"
local msgcrypt = require "wxhw.msgcrypt"
local errors = require "wxhw.errors"
local xml = require "wxhw.xml"
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
    local t = xml.parse(plaintext)
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

-- A hook runs under pcall, so a failing one never fails the push, unless it
-- was made by wxhw and cannot raise (M.trusted_hook: the metrics
-- instruments). Under LuaJIT that pcall costs more than a call: a trace
-- that starts in the hook cannot return through it ("NYI: return to lower
-- frame"), so the hook ran interpreted on every push (bench/gateway
-- --stages: 11.9 against 8.1 µs a push with metrics on).
local TRUSTED = setmetatable({}, { __mode = "k" })

--- Marks fn as an on_event hook that cannot raise and keeps nothing of
-- the info table it gets (the endpoint uses that table again): endpoints
-- call it directly. Returns fn.
function M.trusted_hook(fn)
  TRUSTED[fn] = true
  return fn
end

local function emit(o, info)
  local hook = o.on_event
  if not hook then return end
  if TRUSTED[hook] then hook(info) else pcall(hook, info) end
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

-- LuaJIT's table.clear: the endpoint's own info table is emptied and used
-- again when nothing keeps it (no hook, or a trusted one); elsewhere a
-- fresh table per push.
local clear_table = select(2, pcall(require, "table.clear"))
if type(clear_table) ~= "function" then clear_table = nil end

local function endpoint(o, kind, request, c)
  local scratch = { kind = kind }
  local limit = o.max_body == nil and M.MAX_BODY or o.max_body
  if type(limit) ~= "number" or limit < 1 then error("callback: max_body must be a positive number", 3) end
  local refusals = o.log_refusals
  if refusals == nil then refusals = refusals_mod.default() end
  local fn = function(method, query, headers, raw_body)
    local hook, info = o.on_event, scratch
    if clear_table and (not hook or TRUSTED[hook]) then
      clear_table(scratch)
      scratch.kind = kind
    elseif hook then
      info = new_info(kind)
    else
      scratch.reason, scratch.error = nil, nil -- the two fields read below
    end
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
    if refusals and info.error then refusals:failure(kind, info.error) end
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

-- An error value as text, whatever it is (its __tostring may raise, or
-- return something else).
local function error_text(e)
  if type(e) == "string" then return e end
  local ok, text = pcall(tostring, e)
  if ok and type(text) == "string" then return text end
  return "a " .. type(e) .. " error value"
end

-- The user's handler, the one part of a push that runs under pcall: its
-- error becomes a failure (handler_result's "fail", the message in
-- info.error). Nothing else on the path raises for a push's content, so the
-- endpoint itself runs without pcall frames: under LuaJIT a trace that
-- starts below one (after any C call) cannot return through it ("NYI:
-- return to lower frame"), which left most of a push interpreted in nginx.
local function call_handler(info, fn, msg, ctx)
  local ok, r1, r2 = pcall(fn, msg, ctx)
  if ok then return r1, r2 end
  info.error = error_text(r1)
  return false
end

-- Runs `run(c, info, fn, msg, ctx)` once per distinct push; it returns
-- status, ctype, body and `cache` (false for failures the sender should
-- retry: the claim is dropped so the retransmission runs the handler). No
-- closures are made per request: LuaJIT cannot compile a trace through a
-- function definition, and the gateway's hot path should be traced.
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
  local status, ctype, body, cache = run(c, info, fn, msg, ctx)
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
  o.clock = o.clock or clock.time
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

-- Result of a handler --> "ack" | "reply", text | "fail"[, why].
-- nil/true: acknowledged; string/table: a reply to encrypt; false or
-- nil, err: failure, not cached, so WeChat's retransmission runs it again
-- (`why`: err when it is a string); anything else (or a table cjson cannot
-- encode) fails with `why`.
local function handler_result(ok_or_reply, err, fmt)
  if ok_or_reply == false or (ok_or_reply == nil and err ~= nil) then
    return "fail", type(err) == "string" and err or nil
  end
  if ok_or_reply == nil or ok_or_reply == true then return "ack" end
  if type(ok_or_reply) == "string" then return "reply", ok_or_reply end
  if type(ok_or_reply) == "table" then
    if fmt == "xml" then
      local ok, text = pcall(xml.encode, ok_or_reply) -- keys and values a handler chose
      if ok then return "reply", text end
      return "fail", "callback handler's reply cannot be encoded: " .. tostring(text)
    end
    local text, why = cjson.encode(ok_or_reply)
    if text then return "reply", text end
    return "fail", "callback handler's reply cannot be encoded: " .. tostring(why)
  end
  return "fail", "callback handler returned a " .. type(ok_or_reply)
end

-- A handler's failure: 500, not cached; `why` (a bad return) to info.error.
local function handler_failed(info, why)
  if why then info.error = why end
  return 500, TEXT["Content-Type"], "handler failed", false
end

-- A handler's reply as the passive encrypted answer, in the push's format
-- (XML, or the product's JSON style); a failure is not cached.
local function encrypted_reply(c, info, reply, fmt, json_style)
  local rbody, err = c.mc:reply_body(reply, fmt == "xml" and "xml" or json_style, c.o.clock())
  if not rbody then return handler_failed(info, err.message) end
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

M.TEXT, M.JSON, M.XML = TEXT, JSON, XML
M.plain = plain
M.refuse = refuse
M.resolve_headers = resolve_headers
M.with_headers = with_headers
M.skew_ok = skew_ok
M.make_dedup = make_dedup
M.emit = emit
M.too_large = too_large
M.new_info = new_info
M.endpoint = endpoint
M.once = once
M.with_ctype = with_ctype
M.common_opts = common_opts
M.mc_or_raise = mc_or_raise
M.handler_result = handler_result
M.handler_failed = handler_failed
M.call_handler = call_handler
M.encrypted_reply = encrypted_reply
M.handler_for = handler_for
M.decode_message = decode_message

return M

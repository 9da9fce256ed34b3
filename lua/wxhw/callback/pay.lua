--- WeChat Pay notification endpoint (wxhw.callback.pay).
local E = require "wxhw.callback.endpoint"
local cjson = require "cjson.safe"
local errors = require "wxhw.errors"
local dedup_mod = require "wxhw.callback.dedup"
local resolve_headers, make_dedup, endpoint, once = E.resolve_headers, E.make_dedup, E.endpoint, E.once
local with_ctype, JSON = E.with_ctype, E.JSON

local M = {}

-- WeChat Pay notifications ---------------------------------------------------

local function pay_fail(status, message)
  return status, JSON, cjson.encode({ code = "FAIL", message = message })
end

local function pay_run(_, info, fn, n, ctx)
  local r1, r2 = E.call_handler(info, fn, n, ctx)
  info.dispatched = true
  -- Pay's answer has no body: only false or nil, err fail (a returned
  -- table is not encoded for nothing)
  if r1 == false or (r1 == nil and r2 ~= nil) then
    if type(r2) == "string" and not info.error then info.error = r2 end
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

return M

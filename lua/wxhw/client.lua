--- The request pipeline every API call goes through: base URL per product,
-- access-token injection, JSON in and out (big integers kept exact), errcode →
-- error table, retries with backoff, rate limits and daily quotas, hooks with
-- secrets redacted. See docs/http.md.
--
--   local c = require("wxhw.client").new{ token_provider = tp }
--   local data, err = c:call{ product = "mp", method = "POST", path = "/wxa/getsnticket",
--                             json = { sn = "X" }, token = true }
local json = require "wxhw.json"
local errors = require "wxhw.errors"
local transport = require "wxhw.transport"
local ratelimit = require "wxhw.ratelimit"
local urls = require "wxhw.url"

local M = {}

-- ---------------------------------------------------------------- products

M.BASE_URLS = {
  mp = "https://api.weixin.qq.com",
  wmpf = "https://api.weixin.qq.com",
  wecom = "https://qyapi.weixin.qq.com",
  pay = "https://api.mch.weixin.qq.com",
}

--- Tried after a connection failure that never reached the primary host.
M.BACKUP_URLS = {
  pay = "https://api2.mch.weixin.qq.com",
}

-- A response body as a table, or nil and an error of the pipeline's kind.
-- Integers beyond 2^53 (product_id, MsgId ...) become decimal strings.
local function decode_body(s)
  local v = json.decode(s)
  if v == nil then return nil, errors.new("http", "response is not valid JSON", { reason = "protocol" }) end
  return v
end

-- Deprecated (one release): JSON lives in wxhw.json; these names stay where
-- callers used to find them and are documented as aliases in docs/http.md.
M.null, M.bigint, M.BigInt, M.json_encode, M.json_decode = json.null, json.bigint, json.BigInt, json.encode, decode_body

-- --------------------------------------------------------- errcode classes

--- The global errcodes (developers.weixin.qq.com/doc/channels/API/basics/commErrCode.html),
-- as data. `refresh`: invalidate the token and retry
-- once; `retry`: back off and retry; `wait = "minute"`: not before the next minute.
M.ERRCODES = {
  [-1] = { class = "busy", retry = true },
  [40001] = { class = "token_invalid", refresh = true },
  [40014] = { class = "token_invalid", refresh = true },
  [42001] = { class = "token_invalid", refresh = true },
  [45011] = { class = "minute_quota", retry = true, wait = "minute" },
  [45009] = { class = "daily_quota" },
  [48001] = { class = "permission" },
  [40164] = { class = "permission" },
  [61004] = { class = "permission" },
  [40013] = { class = "permission" },
  [41001] = { class = "bad_request" },
  [40002] = { class = "bad_request" },
  [43002] = { class = "bad_request" },
  [43003] = { class = "bad_request" },
  [44002] = { class = "bad_request" },
  [45002] = { class = "bad_request" },
  [47001] = { class = "bad_request" },
}

--- Per-product differences, looked up before ERRCODES
-- (developer.work.weixin.qq.com/document/path/91039):
-- WeCom's 45009 is "api freq out of limit", a rate limit, not a daily quota,
-- so it must not block the API locally for the rest of the day.
M.PRODUCT_ERRCODES = {
  wecom = {
    [45009] = { class = "rate_limited" },
    [45033] = { class = "busy", retry = true }, -- concurrency limit
    -- the openhw calls' own tokens (model_access_token, device_access_token)
    -- rejected: refreshed once like access_token
    [40082] = { class = "token_invalid", refresh = true },
    [40083] = { class = "token_invalid", refresh = true },
  },
}

--- Products whose answers are not the errcode envelope: the HTTP status says
-- success, the body { code, message } names the error (Pay APIv3: docs/pay.md
-- "Requests"), and `no_content` is a documented success without a body. wxhw.pay itself sends
-- raw (it verifies the signature on the raw body first) and decodes its errors.
M.STATUS_ENVELOPES = {
  pay = { kind = "pay", code = "code", message = "message", no_content = 204 },
}

-- ---------------------------------------------------------------- redaction

M.REDACT = {
  access_token = true, secret = true, corpsecret = true, appsecret = true,
  suite_access_token = true, component_access_token = true, provider_access_token = true,
  suite_secret = true, provider_secret = true, signature = true, sign = true,
  msg_signature = true, paysign = true, authorization = true, ticket = true,
  model_access_token = true, device_access_token = true, -- WeCom openhw's own query tokens
}

local function redacted_map(t)
  if not t then return nil end
  local out = {}
  for k, v in pairs(t) do out[k] = M.REDACT[tostring(k):lower()] and "***" or v end
  return out
end
M.redact = redacted_map

--- A URL or query string with secret parameters replaced by ***.
function M.redact_url(s)
  return (s:gsub("([%w_]+)=([^&#]*)", function(k, v)
    if M.REDACT[k:lower()] then return k .. "=***" end
  end))
end

-- ------------------------------------------------------------------- helpers

local function header(res, name) return res and urls.header(res.headers, name) end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days since 1970-01-01 of a civil date (proleptic Gregorian), no os.time
-- (which would apply the local time zone).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Seconds to wait from a Retry-After value: delta seconds, or an IMF-fixdate
-- ("Wed, 21 Oct 2015 07:28:00 GMT") relative to `now`. nil if unparsable.
function M.parse_retry_after(v, now)
  if type(v) ~= "string" then return nil end
  local secs = tonumber(v:match("^%s*(%d+%.?%d*)%s*$"))
  if secs then return secs end
  local d, mon, y, hh, mm, ss = v:match("^%s*%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT%s*$")
  if not d or not MONTHS[mon] then return nil end
  local at = days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
  return math.max(0, at - now)
end

local function retry_after(res, now)
  return M.parse_retry_after(header(res, "retry-after"), now)
end

local function request_id(res, body)
  local id = header(res, "request-id") or header(res, "x-request-id")
  if id then return id end
  local msg = type(body) == "table" and body.errmsg
  if type(msg) == "string" then
    return msg:match("rid:%s*([%w%-]+)") or msg:match("hint:%s*%[([^%]]+)%]")
  end
end

-- -------------------------------------------------------------------- client

local Client = {}
Client.__index = Client

local NO_RULE = {}

local HOOKS = { on_request = true, on_response = true, on_retry = true }

local function default_logger(event, info)
  local parts = { "wxhw", event, info.method, info.path }
  for _, k in ipairs { "status", "errcode", "latency", "request_id", "attempt", "delay" } do
    if info[k] ~= nil then
      local v = info[k]
      -- whole numbers as integers (JSON numbers are floats under Lua 5.4: errcode=40001.0)
      if type(v) == "number" then v = v == math.floor(v) and json.id(v) or ("%.3f"):format(v) end
      parts[#parts + 1] = k .. "=" .. tostring(v)
    end
  end
  if info.error then parts[#parts + 1] = "error=" .. tostring(info.error) end
  io.stderr:write(table.concat(parts, " "), "\n")
end

-- A product whose base URL was overridden (an emulator, a test back end, a
-- proxy) never inherits a production backup host: signed requests from a test
-- configuration must not leave for production. Explicit backup_urls still apply.
local function backup_urls_for(o)
  local out = {}
  if o.backup_urls == false then return out end
  for product, url in pairs(M.BACKUP_URLS) do
    if not (o.base_urls and rawget(o.base_urls, product)) then out[product] = url end
  end
  for product, url in pairs(o.backup_urls or {}) do out[product] = url end
  return out
end

--- Options:
--   base_urls = { mp = url, ... }      overrides M.BASE_URLS (emulator, tests)
--   backup_urls = { pay = url } | false  (a product given in base_urls gets no default backup)
--   transport = object | { transport.new options }
--   token_provider = { token = fn(self) -> token | nil, err, invalidate = fn(self, failed) }
--   retry = { attempts = 3, base_delay = 0.2, max_delay = 5, max_total = 15 }
--   rate_limits = { ["mp /path"] = { rate =, burst =, daily = } | false, ... }  (merged over defaults)
--   limiter = ratelimit.new{...}        (shared backends), limiter_namespace = "appid:"
--   rate_wait = seconds                 how long to wait for a bucket before failing (default 1)
--   hooks = { on_request = fn, on_response = fn, on_retry = fn }
--   log = true | fn(event, info)        default logger off unless set (or WXHW_LOG=1)
--   random = fn() -> [0,1)              jitter source (tests)
function M.new(o)
  o = o or {}
  local t = o.transport
  if t == nil or (type(t) == "table" and not t.request) then
    local err
    t, err = transport.new(t or {})
    if not t then return nil, err end
  end
  local self = setmetatable({
    transport = t,
    base_urls = setmetatable(o.base_urls or {}, { __index = M.BASE_URLS }),
    backup_urls = backup_urls_for(o),
    token_provider = o.token_provider,
    retry = {
      attempts = 3, base_delay = 0.2, max_delay = 5, max_total = 15,
    },
    rules = setmetatable({}, { __index = ratelimit.DEFAULTS }),
    limiter = o.limiter or ratelimit.new{ now = t.now, sleep = t.sleep },
    namespace = o.limiter_namespace or "",
    rate_wait = o.rate_wait or 1,
    hooks = { on_request = {}, on_response = {}, on_retry = {} },
    random = o.random or math.random,
    now = t.now, sleep = t.sleep,
  }, Client)
  for k, v in pairs(o.retry or {}) do self.retry[k] = v end
  for k, v in pairs(o.rate_limits or {}) do self.rules[k] = v end
  for name, fn in pairs(o.hooks or {}) do self:hook(name, fn) end
  local log = o.log
  if log == nil and os.getenv("WXHW_LOG") == "1" then log = true end
  if log then
    local fn = type(log) == "function" and log or default_logger
    self:hook("on_request", function(i) fn("request", i) end)
    self:hook("on_response", function(i) fn("response", i) end)
    self:hook("on_retry", function(i) fn("retry", i) end)
  end
  return self
end

--- Adds a hook; each receives one info table (method, path, product, status,
-- errcode, latency, request_id, attempt, query/headers redacted).
function Client:hook(name, fn)
  if not HOOKS[name] then error("wxhw.client: unknown hook " .. tostring(name), 2) end
  if type(fn) ~= "function" then error("wxhw.client: hook must be a function", 2) end
  local list = self.hooks[name]
  list[#list + 1] = fn
end

function Client:_emit(name, info)
  for _, fn in ipairs(self.hooks[name]) do
    local ok, err = pcall(fn, info)
    if not ok and io and io.stderr then io.stderr:write("wxhw: hook ", name, " failed: ", tostring(err), "\n") end
  end
end

function Client:__tostring()
  return ("wxhw.Client (transport=%s, retry attempts=%d, token_provider=%s)"):format(
    tostring(self.transport.kind), self.retry.attempts, self.token_provider and "yes" or "no")
end

local function host_of(url)
  return url:match("^%a+://([^/?#]+)") or url
end

-- A 3xx, or a 2xx without a body, is not an answer of the API: the request
-- went to a redirecting proxy or a wrong base URL, or the answer was lost, so
-- a write may not have happened. The platforms' APIs answer JSON (Pay: 204
-- where documented) and never redirect; the transport follows no redirect.
-- A redirect is never retried; an empty answer only for idempotent calls.
local function not_an_answer(res, status)
  if status >= 300 then
    local loc = header(res, "location")
    -- no query or userinfo (they may carry the token or a password), and not unbounded
    loc = type(loc) == "string" and errors.cut((loc:match("^[^?#]*"):gsub("//[^/@]*@", "//", 1)), 200) or nil
    return errors.new("http", ("HTTP %d redirect%s is not an API answer (a proxy or a wrong base URL?); "
      .. "nothing is known to have been done"):format(status, loc and (" to " .. loc) or ""),
      { reason = "redirect", http_status = status, retryable = false, request_id = request_id(res) })
  end
  return errors.new("http", ("HTTP %d with an empty body is not an API answer; the call may or may not "
    .. "have taken effect"):format(status),
    { reason = "empty_body", http_status = status, retryable = true, request_id = request_id(res) })
end

-- Decides what a finished attempt means. Returns data (success) or
-- nil, err, action where action is "refresh" | "retry" | nil.
local function interpret(self, spec, res, terr, idempotent)
  if not res then
    local retry = terr.retryable and (idempotent or terr.sent == false)
    return nil, terr, retry and "retry" or nil
  end
  local status = res.status
  if spec.raw then
    if status >= 500 or status == 429 then
      local err = errors.new("http", "HTTP " .. status, {
        reason = "status", http_status = status, retryable = true, request_id = request_id(res),
        retry_after = retry_after(res, self.now()), response = res })
      return nil, err, (status == 429 or idempotent) and "retry" or nil
    end
    return res
  end
  if status >= 300 and status < 400 then return nil, not_an_answer(res, status) end
  local envelope = M.STATUS_ENVELOPES[spec.product or ""]
  local body, derr
  if res.body == "" or res.body == nil then
    if status < 300 and not (envelope and status == envelope.no_content) then
      local err = not_an_answer(res, status)
      return nil, err, idempotent and "retry" or nil
    end
    body = {}
  else
    body, derr = decode_body(res.body)
  end
  local rid = request_id(res, body)
  if envelope then
    if status < 300 and body then return body end
    local msg = body and body[envelope.message]
    local err = errors.new(envelope.kind, msg or ("HTTP " .. status), {
      errcode = body and body[envelope.code], errmsg = msg, http_status = status,
      request_id = rid, retryable = status >= 500 or status == 429, retry_after = retry_after(res, self.now()) })
    return nil, err, (status == 429 or (status >= 500 and idempotent)) and "retry" or nil
  end
  if not body then
    derr.http_status = status
    derr.request_id = rid
    if status >= 500 or status == 429 then
      derr.message = "HTTP " .. status .. " with a non-JSON body"
      derr.retryable = true
      derr.retry_after = retry_after(res, self.now())
      return nil, derr, (status == 429 or idempotent) and "retry" or nil
    end
    return nil, derr
  end
  local errcode = type(body) == "table" and tonumber(body.errcode) or 0
  if errcode == 0 and status < 400 then return body end
  if errcode == 0 then
    local retry = status >= 500 or status == 429
    return nil, errors.new("http", "HTTP " .. status, {
      reason = "status", http_status = status, retryable = retry, request_id = rid,
      retry_after = retry_after(res, self.now()) }), (status == 429 or (retry and idempotent)) and "retry" or nil
  end
  local by_product = M.PRODUCT_ERRCODES[spec.product or ""]
  local c = (by_product and by_product[errcode]) or M.ERRCODES[errcode] or { class = "other" }
  local err = errors.new("wx", ("%s %s failed: %s"):format(spec.method or "GET", spec.path, tostring(body.errmsg)), {
    errcode = errcode, errmsg = body.errmsg, class = c.class, http_status = status,
    request_id = rid, retryable = c.retry or false, retry_after = retry_after(res, self.now()) })
  if c.wait == "minute" then
    err.retry_after = math.max(err.retry_after or 0, 60 - (self.now() % 60) + 0.05)
  end
  if c.refresh then return nil, err, "refresh" end
  return nil, err, c.retry and "retry" or nil
end

--- One API call. spec:
--   product = "mp"|"wmpf"|"wecom"|"pay", or base_url = "https://..."
--   method = "GET"|"POST"..., path = "/cgi-bin/...", query = { k = v }
--   json = table (encoded with big integers exact) | body = string
--   headers = { ... }, token = true (inject access_token via token_provider)
--     | { provider = <:token(), :invalidate(t)>, param = "model_access_token" }
--     (another provider, or another query parameter; refreshed once the same way)
--   idempotent = bool (default: not POST/PATCH), timeout = seconds
--   raw = true: return the response table (status, headers, body) undecoded
--   sign = fn(method, path_with_query, body) -> headers (called per attempt)
-- Returns the decoded table, or nil, err.
function Client:call(spec)
  if type(spec) ~= "table" then error("wxhw.client:call expects a table", 2) end
  local method = spec.method or "GET"
  local path = spec.path
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then error("wxhw.client:call: path must start with /", 2) end
  local base = spec.base_url or self.base_urls[spec.product or ""]
  if not base then error("wxhw.client:call: unknown product " .. tostring(spec.product), 2) end
  local backup = not spec.base_url and self.backup_urls[spec.product or ""] or nil
  local provider, param = self.token_provider, "access_token"
  if type(spec.token) == "table" then
    provider, param = spec.token.provider, spec.token.param or "access_token"
    if type(provider) ~= "table" or not provider.token or type(param) ~= "string" then
      error("wxhw.client:call: token = { provider = <object with :token()>, param = string }", 2)
    end
  end
  if spec.token and not provider then
    return errors.fail("token", "this call needs an access token but the client has no token_provider")
  end
  local idempotent = spec.idempotent
  if idempotent == nil then idempotent = method ~= "POST" and method ~= "PATCH" end

  local body = spec.body
  local headers = {}
  for k, v in pairs(spec.headers or {}) do headers[k] = v end
  if spec.json ~= nil then
    body = json.encode(spec.json)
    if headers["Content-Type"] == nil then headers["Content-Type"] = "application/json" end
  end
  if headers["Accept"] == nil then headers["Accept"] = "application/json" end

  local key_host = host_of(base)
  local limit_key = self.namespace .. key_host .. path
  local rule = spec.rate_limit
  if rule == nil then rule = self.rules[(spec.product or "") .. " " .. path] end
  if rule == nil then rule = NO_RULE end -- still honours a 45009 seen earlier

  local retry = self.retry
  local start = self.now()
  local attempt, refreshed, use_backup = 0, false, false
  local query = {}
  for k, v in pairs(spec.query or {}) do query[k] = v end

  while true do
    attempt = attempt + 1
    local token
    if spec.token then
      local terr
      token, terr = provider:token()
      if not token then
        if not errors.is(terr) then terr = errors.new("token", tostring(terr or "no token")) end
        return nil, terr
      end
      query[param] = token
    end
    local qs = urls.encode_query(query)
    local target = path .. (qs ~= "" and ("?" .. qs) or "")
    local url = (use_backup and backup or base) .. target
    if rule then
      local ok, qerr = self.limiter:acquire(limit_key, rule, self.rate_wait)
      if not ok then
        qerr.path, qerr.method = path, method
        return nil, qerr
      end
    end
    local req_headers = headers
    if spec.sign then
      req_headers = {}
      for k, v in pairs(headers) do req_headers[k] = v end
      for k, v in pairs(spec.sign(method, target, body or "") or {}) do req_headers[k] = v end
    end
    local info = {
      product = spec.product, method = method, path = path, host = host_of(url), attempt = attempt,
      query = redacted_map(query), headers = redacted_map(req_headers),
    }
    if token then info.query[param] = "***" end -- whatever the parameter is called
    self:_emit("on_request", info)
    local t0 = self.now()
    local res, terr = self.transport:request{
      method = method, url = url, headers = req_headers, body = body, timeout = spec.timeout,
    }
    local latency = self.now() - t0
    local data, err, action = interpret(self, spec, res, terr, idempotent)
    self:_emit("on_response", {
      product = spec.product, method = method, path = path, host = info.host, attempt = attempt,
      status = res and res.status, errcode = err and err.errcode or (type(data) == "table" and tonumber(data.errcode)) or (data and 0),
      latency = latency, request_id = err and err.request_id or (res and request_id(res)),
      error = err,
    })
    if data ~= nil then return data end
    err.path, err.method, err.attempts = err.path or path, err.method or method, attempt
    if err.class == "daily_quota" and rule ~= false then self.limiter:exhaust(limit_key) end

    if action == "refresh" and spec.token and not refreshed then
      refreshed = true
      attempt = attempt - 1 -- the one token retry is not a backoff retry
      if provider.invalidate then provider:invalidate(token) end
      self:_emit("on_retry", {
        product = spec.product, method = method, path = path, attempt = attempt + 1,
        errcode = err.errcode, delay = 0, reason = "token", error = err, request_id = err.request_id })
    elseif action == "retry" and attempt < retry.attempts then
      local cap = math.min(retry.max_delay, retry.base_delay * 2 ^ (attempt - 1))
      local delay = self.random() * cap -- full jitter
      if err.retry_after then delay = math.max(delay, err.retry_after) end
      local elapsed = self.now() - start
      if elapsed + delay + latency > retry.max_total then return nil, err end
      if backup and res == nil and err.sent == false then use_backup = true end
      self:_emit("on_retry", {
        product = spec.product, method = method, path = path, attempt = attempt + 1,
        errcode = err.errcode, status = err.http_status, delay = delay, reason = err.reason or err.class,
        error = err, request_id = err.request_id })
      if delay > 0 then self.sleep(delay) end
    else
      return nil, err
    end
  end
end

--- Shorthands.
function Client:get(product, path, query, o)
  local spec = { product = product, method = "GET", path = path, query = query }
  for k, v in pairs(o or {}) do spec[k] = v end
  return self:call(spec)
end

function Client:post(product, path, body, o)
  local spec = { product = product, method = "POST", path = path, json = body }
  for k, v in pairs(o or {}) do spec[k] = v end
  return self:call(spec)
end

return M

--- The wxhw metrics on a wxhw.metrics registry, and the hooks that feed
-- them: callback endpoints (on_event), API clients (on_response), token
-- managers (on_token_refresh), call sessions (transition events) and rate
-- limiters (waits).
--
--   local ins = require("wxhw.metrics.instruments").new(registry)
--   callback.mini_program{ ..., on_event = ins.on_event }
--   ins:client(client); token.new{ ..., on_token_refresh = ins.on_token_refresh }
--   ins:calls(calls); ins:limiter(client.limiter)
--
-- Nothing here reads a secret: labels are products, event names, outcomes,
-- refusal reasons, API paths, errcodes and call states.
local machine = require "wxhw.call.machine"
local trusted_hook = require("wxhw.callback").trusted_hook

local M = {}
M.__index = M

local function outcome(info)
  local status = info.status or 500
  if info.duplicate then return "duplicate" end
  if info.unknown and status < 300 then return "unhandled" end
  if status < 300 then return "ok" end
  if status < 500 then return "refused" end
  return "failed"
end
M.outcome = outcome

function M.new(reg)
  local self = setmetatable({ registry = reg }, M)
  local pushes = reg:counter("wxhw_callback_pushes_total",
    "Pushes received, by product, event and outcome (ok, duplicate, unhandled, refused, failed).",
    { "product", "event", "outcome" })
  local dups = reg:counter("wxhw_callback_duplicates_total",
    "Retransmitted pushes answered from the de-duplication store.", { "product" })
  local refusals = reg:counter("wxhw_callback_refusals_total",
    "Pushes refused before any handler ran, by reason.", { "product", "reason" })
  local latency = reg:histogram("wxhw_callback_handler_seconds", "Time in the push handler.", { "product" })
  local api = reg:counter("wxhw_api_calls_total", "API call attempts, by endpoint and errcode.",
    { "product", "endpoint", "errcode" })
  local api_lat = reg:histogram("wxhw_api_call_seconds", "API call attempt latency.", { "product" })
  local refreshes = reg:counter("wxhw_token_refreshes_total", "Token fetch attempts, by reason.", { "reason" })
  local refresh_fail = reg:counter("wxhw_token_refresh_failures_total", "Failed token fetches, by reason.",
    { "reason" })
  local entered = reg:counter("wxhw_calls_total", "Call sessions that entered each state.", { "state" })
  local active = reg:gauge("wxhw_calls_active", "Call sessions now in each non-final state (this process).",
    { "state" })
  local waits = reg:counter("wxhw_ratelimit_waits_total", "Waits for a rate-limit bucket.")
  local waited = reg:counter("wxhw_ratelimit_wait_seconds_total", "Seconds spent waiting for rate-limit buckets.")

  --- callback on_event(info): one push. Counters on Lua tables, nothing
  -- that raises: endpoints call it without pcall (callback.trusted_hook).
  self.on_event = trusted_hook(function(info)
    local kind, o = info.kind or "unknown", outcome(info)
    pushes:inc(1, kind, info.event or "none", o)
    if o == "duplicate" then dups:inc(1, kind)
    elseif o == "refused" then refusals:inc(1, kind, info.reason or tostring(info.status)) end
    if info.handler_ms then latency:observe(info.handler_ms / 1000, kind) end
  end)

  --- refusals outside an endpoint (an unknown path)
  function self.refused(kind, reason) pushes:inc(1, kind, "none", "refused"); refusals:inc(1, kind, reason) end

  --- client on_response(info): one attempt.
  function self.on_response(info)
    local code = info.errcode
    if code == nil then
      local err = info.error
      code = type(err) == "table" and (err.kind or err.class) or "none"
    end
    api:inc(1, info.product or "none", info.path or "none", code)
    if info.latency then api_lat:observe(info.latency, info.product or "none") end
  end

  --- token manager on_token_refresh(info): one fetch attempt.
  function self.on_token_refresh(info)
    local reason = info.reason or "none"
    refreshes:inc(1, reason)
    if not info.ok then refresh_fail:inc(1, reason) end
  end

  --- calls "transition" listener (session, from, to)
  function self.on_transition(_, from, to)
    entered:inc(1, to)
    if from and not machine.final[from] then active:dec(1, from) end
    if not machine.final[to] then active:inc(1, to) end
  end

  --- a rate limiter's wait of `seconds`
  function self.on_wait(seconds)
    waits:inc(1)
    waited:inc(seconds)
  end
  return self
end

--- Feeds the API metrics from a wxhw.client (its on_response hook) and the
-- rate-limit waits of its limiter.
function M:client(client)
  client:hook("on_response", self.on_response)
  self:limiter(client.limiter)
  return client
end

--- Counts a wxhw.call object's transitions.
function M:calls(calls)
  calls:on("transition", self.on_transition)
  return calls
end

--- Counts the waits of a wxhw.ratelimit limiter (wraps its sleep, once).
function M:limiter(limiter)
  if not limiter or limiter._metrics_wait then return limiter end
  local sleep, on_wait = limiter.sleep, self.on_wait
  limiter._metrics_wait = true
  limiter.sleep = function(seconds)
    on_wait(seconds)
    return sleep(seconds)
  end
  return limiter
end

return M

--- A transport that lets several request pipelines run at once over one
-- blocking transport: each job runs in a coroutine, its `request` yields, and
-- the scheduler sends every waiting request together with the inner
-- transport's `batch` (libcurl multi, or light threads in nginx). The client
-- pipeline (tokens, retries, errcodes, hooks, rate limits) runs unchanged
-- inside each coroutine; outside `run` a request goes straight through.
-- Used by provisioning (per-device calls) and Pay (device list pages).
--
--   local mux = require("wxhw.transport.mux").new(client.transport)
--   local c = wxhw.client.new{ transport = mux, ... }
--   local results = mux:run({ function() return c:call{...} end, ... }, 16)
--   -- results[i] = { return values of job i }
local errors = require "wxhw.errors"

local M = {}
local Mux = {}
Mux.__index = Mux

local YIELD = {}
local unpack = table.unpack or unpack

function M.new(inner)
  if type(inner) ~= "table" or not inner.request or not inner.batch then
    error("transport.mux: a transport with request and batch is required", 2)
  end
  return setmetatable({ inner = inner, owned = setmetatable({}, { __mode = "k" }), kind = inner.kind,
    now = inner.now, sleep = inner.sleep, batches = 0, max_in_flight = 0 }, Mux)
end

function Mux:__tostring() return "wxhw.transport.mux over " .. tostring(self.inner) end

function Mux:request(req)
  local co = coroutine.running()
  if co and self.owned[co] then return coroutine.yield(YIELD, req) end
  return self.inner:request(req)
end

function Mux:batch(reqs, o) return self.inner:batch(reqs, o) end
function Mux:close() if self.inner.close then self.inner:close() end end

local function pack(...) return { n = select("#", ...), ... } end

--- Runs the functions with at most `concurrency` in flight; returns their
-- results in order (each a table of return values). An error in a job raises.
function Mux:run(fns, concurrency)
  concurrency = concurrency or 8
  local results, nexti, waiting = {}, 1, {}
  local function step(slot, ...)
    local r = pack(coroutine.resume(slot.co, ...))
    if not r[1] then self.owned[slot.co] = nil; error(r[2], 0) end
    if coroutine.status(slot.co) == "dead" then
      self.owned[slot.co] = nil
      results[slot.i] = { unpack(r, 2, r.n) }
      return true
    end
    if r[2] ~= YIELD then self.owned[slot.co] = nil; error("transport.mux: a job yielded on its own", 0) end
    slot.req = r[3]
    return false
  end
  while true do
    while #waiting < concurrency and nexti <= #fns do
      local fn = fns[nexti]
      local slot = { i = nexti, co = coroutine.create(function() return fn() end) }
      self.owned[slot.co] = true
      nexti = nexti + 1
      if not step(slot) then waiting[#waiting + 1] = slot end
    end
    if #waiting == 0 then break end
    local reqs = {}
    for k, s in ipairs(waiting) do reqs[k] = s.req end
    if #reqs > self.max_in_flight then self.max_in_flight = #reqs end
    self.batches = self.batches + 1
    local res = self.inner:batch(reqs, { concurrency = #reqs })
    local still = {}
    for k, s in ipairs(waiting) do
      local r = res[k]
      local done
      if r == nil or errors.is(r) then done = step(s, nil, r) else done = step(s, r) end
      if not done then still[#still + 1] = s end
    end
    waiting = still
  end
  return results
end

return M

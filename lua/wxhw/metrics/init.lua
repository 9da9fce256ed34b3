--- Metrics in the Prometheus text exposition format (version 0.0.4):
-- counters, gauges and histograms with labels, a backend that keeps the
-- numbers, and a renderer for a /metrics endpoint.
--
--   local metrics = require "wxhw.metrics"
--   local reg = metrics.new()                        -- memory: one process
--   local reg = metrics.new{ backend = metrics.ngx_shared("wxhw_metrics") } -- every nginx worker
--   local pushes = reg:counter("x_pushes_total", "Pushes.", { "product", "outcome" })
--   pushes:inc(1, "mp", "ok")
--   local lat = reg:histogram("x_seconds", "Latency.", { "product" })  -- default buckets
--   lat:observe(0.004, "mp")
--   reg:render()  --> "# HELP x_pushes_total Pushes.\n# TYPE ..."
--
-- Label values are positional (up to 4). A metric keeps at most
-- `max_series` label sets (500); later ones are counted under the value
-- "other", so label values taken from the network cannot grow memory.
-- Histogram buckets are kept as plain counters, one per bucket (made
-- cumulative when rendered), plus a sum: an observation is two additions.
local M = {}

M.DEFAULT_BUCKETS = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 }
M.MAX_SERIES = 500
M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

local SEP = "\31" -- between a metric's name, its label text and a bucket's index in a key

-- backends ------------------------------------------------------------------

--- One process: numbers in a Lua table.
function M.memory()
  local values = {}
  return {
    kind = "memory",
    add = function(key, n) values[key] = (values[key] or 0) + n end,
    snapshot = function() return values end,
  }
end

--- Every nginx worker: additions are summed in the worker and added to the
-- lua_shared_dict `dict` every `flush` seconds (1) by a timer, and before a
-- render, so a push costs a Lua table update rather than a dict operation
-- under its lock. Another worker's last `flush` seconds may not show yet.
-- A full dict never evicts a counter: new series wait until there is room.
function M.ngx_shared(dict, flush)
  local clock = require "wxhw.clock"
  local ngx_, shared = clock.ngx(), clock.shared_dict(dict)
  if not shared then return nil, "metrics: no lua_shared_dict " .. tostring(dict) end
  flush = flush or 1
  local pending, timer = {}, false
  -- incr never evicts; a new key is added with safe_add, which refuses
  -- rather than evict another counter when the dict is full (the numbers
  -- then wait in `pending` for the next flush)
  local function add_one(key, n)
    if shared:incr(key, n) then return true end
    local ok, err = shared:safe_add(key, n)
    if ok then return true end
    return err == "exists" and shared:incr(key, n) ~= nil
  end
  local function push()
    for key, n in pairs(pending) do
      if add_one(key, n) then pending[key] = nil end
    end
  end
  local function start()
    if timer or ngx_.get_phase() == "init" then return end
    timer = ngx_.timer.every(flush, function() push() end) and true
  end
  return {
    kind = "ngx_shared", dict = dict,
    add = function(key, n)
      pending[key] = (pending[key] or 0) + n
      if not timer then start() end
    end,
    snapshot = function()
      push()
      local t = {}
      for _, key in ipairs(shared:get_keys(0)) do t[key] = shared:get(key) end
      return t
    end,
  }
end

-- metrics ---------------------------------------------------------------------

local Metric = {}
Metric.__index = Metric

local function escape_label(v)
  return (v:gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function label_text(names, values, extra)
  local parts = {}
  for i, name in ipairs(names) do parts[i] = name .. '="' .. escape_label(values[i]) .. '"' end
  if extra then parts[#parts + 1] = extra end
  return table.concat(parts, ",")
end

-- The record of one label set: its keys in the backend, made once.
local function make_series(m, values)
  local labels = label_text(m.labels, values)
  local base = m.name .. SEP .. labels
  local s = { key = base }
  if m.kind == "histogram" then
    s.buckets = {}
    for i = 1, #m.buckets + 1 do s.buckets[i] = base .. SEP .. i end
    s.sum = base .. SEP .. "sum"
  end
  return s
end

-- Slow path: normalise the values (strings, at most 128 bytes), then find or
-- make the record, within the metric's series limit.
local function new_series(m, a, b, c, d)
  local raw, values = { a, b, c, d }, {}
  local node = m.tree
  for i = 1, #m.labels do
    local v = raw[i]
    if type(v) == "number" and v % 1 == 0 and v > -1e15 and v < 1e15 then v = ("%d"):format(v) end -- 0, not 0.0
    v = v == nil and "" or tostring(v)
    if #v > 128 then v = v:sub(1, 128) end
    values[i] = v
  end
  for i = 1, #m.labels - 1 do
    local nxt = node[values[i]]
    if not nxt then
      if m.count >= m.max_series then return m.overflow end
      nxt = {}
      node[values[i]] = nxt
    end
    node = nxt
  end
  local last = values[#m.labels]
  local s = node[last]
  if s then return s end
  if m.count >= m.max_series then return m.overflow end
  m.count = m.count + 1
  s = make_series(m, values)
  node[last] = s
  return s
end

-- Fast path: nested table lookups by the values as given.
local function find(m, a, b, c, d)
  local n, s = #m.labels, m.tree
  s = s[a]; if n == 1 or not s then return s end
  s = s[b]; if n == 2 or not s then return s end
  s = s[c]; if n == 3 or not s then return s end
  return s[d]
end

local function series(m, a, b, c, d)
  if m.single then return m.single end
  return (a ~= nil and find(m, a, b, c, d)) or new_series(m, a, b, c, d)
end

--- counter / gauge: adds n (default 1) to the label set's value.
function Metric:inc(n, a, b, c, d)
  self.add(series(self, a, b, c, d).key, n or 1)
end

--- gauge: subtracts n (default 1).
function Metric:dec(n, a, b, c, d)
  self.add(series(self, a, b, c, d).key, -(n or 1))
end

--- histogram: one observation of v.
function Metric:observe(v, a, b, c, d)
  local s = series(self, a, b, c, d)
  local bk = self.buckets
  local i = 1
  while i <= #bk and v > bk[i] do i = i + 1 end
  self.add(s.buckets[i], 1)
  self.add(s.sum, v)
end

-- registry --------------------------------------------------------------------

local Registry = {}
Registry.__index = Registry

--- opts: backend (M.memory()), max_series (M.MAX_SERIES).
function M.new(opts)
  opts = opts or {}
  return setmetatable({ backend = opts.backend or M.memory(), order = {}, by_name = {},
                        max_series = opts.max_series or M.MAX_SERIES }, Registry)
end

local function declare(self, kind, name, help, labels, buckets)
  if type(name) ~= "string" or not name:match("^[%a_:][%w_:]*$") then
    error("metrics: bad metric name " .. tostring(name), 3)
  end
  labels = labels or {}
  if #labels > 4 then error("metrics: at most 4 labels", 3) end
  for _, l in ipairs(labels) do
    if type(l) ~= "string" or not l:match("^[%a_][%w_]*$") or l == "le" then
      error("metrics: bad label name " .. tostring(l), 3)
    end
  end
  local old = self.by_name[name]
  if old then
    -- the same declaration again (a module loaded twice) gives the same metric
    if old.kind ~= kind or table.concat(old.labels, ",") ~= table.concat(labels, ",") then
      error("metrics: " .. name .. " already declared differently", 3)
    end
    return old
  end
  if kind == "histogram" then
    buckets = buckets or M.DEFAULT_BUCKETS
    for i = 2, #buckets do
      if buckets[i] <= buckets[i - 1] then error("metrics: buckets must increase", 3) end
    end
  end
  local m = setmetatable({ kind = kind, name = name, help = help or "", labels = labels, buckets = buckets,
                           tree = {}, count = 0, max_series = self.max_series, add = self.backend.add }, Metric)
  if #labels == 0 then m.single = make_series(m, {}) end
  local other = {}
  for i = 1, #labels do other[i] = "other" end
  m.overflow = make_series(m, other)
  self.by_name[name] = m
  self.order[#self.order + 1] = m
  return m
end

function Registry:counter(name, help, labels) return declare(self, "counter", name, help, labels) end
function Registry:gauge(name, help, labels) return declare(self, "gauge", name, help, labels) end
function Registry:histogram(name, help, labels, buckets) return declare(self, "histogram", name, help, labels, buckets) end

local function number(v)
  if v == math.huge then return "+Inf" elseif v == -math.huge then return "-Inf" elseif v ~= v then return "NaN" end
  if v % 1 == 0 and v > -1e15 and v < 1e15 then return ("%d"):format(v) end
  local short = ("%.15g"):format(v) -- 0.0025, not 0.0025000000000000001
  if tonumber(short) == v then return short end
  return ("%.17g"):format(v)
end

local function sample(out, name, labels, v)
  out[#out + 1] = name .. (labels ~= "" and "{" .. labels .. "}" or "") .. " " .. number(v) .. "\n"
end

local function render_histogram(out, m, entries)
  -- entries: label text .. SEP .. bucket index or "sum" --> value
  local sets, names = {}, {}
  for rest, v in pairs(entries) do
    local labels, part = rest:match("^(.*)" .. SEP .. "([^" .. SEP .. "]*)$")
    if labels then
      local s = sets[labels]
      if not s then s = {}; sets[labels] = s; names[#names + 1] = labels end
      s[part] = v
    end
  end
  table.sort(names)
  for _, labels in ipairs(names) do
    local s, total = sets[labels], 0
    for i = 1, #m.buckets + 1 do
      total = total + (s[tostring(i)] or 0)
      local le = 'le="' .. (i <= #m.buckets and number(m.buckets[i]) or "+Inf") .. '"'
      sample(out, m.name .. "_bucket", labels == "" and le or labels .. "," .. le, total)
    end
    sample(out, m.name .. "_sum", labels, s.sum or 0)
    sample(out, m.name .. "_count", labels, total)
  end
end

--- The text exposition of every declared metric.
function Registry:render()
  local by_metric = {}
  for key, v in pairs(self.backend.snapshot()) do
    local name, rest = key:match("^([^" .. SEP .. "]*)" .. SEP .. "(.*)$")
    if name and self.by_name[name] and type(v) == "number" then
      local t = by_metric[name] or {}
      by_metric[name] = t
      t[rest] = v
    end
  end
  local out = {}
  for _, m in ipairs(self.order) do
    out[#out + 1] = "# HELP " .. m.name .. " " .. m.help:gsub("\\", "\\\\"):gsub("\n", "\\n") .. "\n"
    out[#out + 1] = "# TYPE " .. m.name .. " " .. m.kind .. "\n"
    local entries = by_metric[m.name] or {}
    if m.kind == "histogram" then
      render_histogram(out, m, entries)
    else
      if m.single and entries[""] == nil then entries[""] = 0 end
      local labels = {}
      for l in pairs(entries) do labels[#labels + 1] = l end
      table.sort(labels)
      for _, l in ipairs(labels) do sample(out, m.name, l, entries[l]) end
    end
  end
  return table.concat(out)
end

--- An HTTP handler (method, query, headers, body) for /metrics.
function Registry:handler()
  local headers = { ["Content-Type"] = M.CONTENT_TYPE }
  return function(method)
    if method ~= "GET" and method ~= "HEAD" then return 405, { ["Content-Type"] = "text/plain" }, "method not allowed" end
    return 200, headers, self:render()
  end
end

return M

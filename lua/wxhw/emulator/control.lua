--- The control API under /__emulator/ (loopback only): health, credentials,
-- counters, the clock, fault injection, tokens, reset, shutdown. Product
-- modules add their own paths with emu.control_routes[path] = fn(emu, req, body).
local util = require "wxhw.emulator.util"

local function pid()
  local f = io.open("/proc/self/stat", "r")
  if not f then return nil end
  local s = f:read("l"); f:close()
  return tonumber(s:match("^(%d+)"))
end
local PID = pid()

local FAULT_FIELDS = {
  path = "string", method = "string", skip = "number", count = "number", errcode = "number",
  errmsg = "string", http_status = "number", body = "string", retry_after = "number",
  delay_ms = "number", reset = "boolean", truncate = "boolean", bad_signature = "boolean",
  signtest = "boolean", code = "string",
}

local function add_fault(emu, f)
  if type(f) ~= "table" then return nil, "fault must be an object" end
  for k, v in pairs(f) do
    if not FAULT_FIELDS[k] then return nil, "unknown fault field '" .. tostring(k) .. "'" end
    if type(v) ~= FAULT_FIELDS[k] then return nil, "fault field '" .. k .. "' must be a " .. FAULT_FIELDS[k] end
  end
  if not f.path then return nil, "fault needs a path (exact, prefix*, or *)" end
  if f.http_status and (f.http_status < 100 or f.http_status > 599) then return nil, "bad http_status" end
  emu.fault_seq = (emu.fault_seq or 0) + 1
  f.id = emu.fault_seq
  emu.faults[#emu.faults + 1] = f
  return f
end

local routes = {}

routes["GET /__emulator/health"] = function(emu)
  return { ok = true, now = emu:now(), pid = PID, port = emu.port, requests = emu.requests_total }
end

routes["GET /__emulator/credentials"] = function(emu)
  local out = util.copy(emu.credentials)
  out.base_url = emu.base_url
  if emu.pay then out.pay = emu.pay:credentials() end
  return out
end

routes["GET /__emulator/counters"] = function(emu)
  return { endpoints = emu.counters.endpoints, token_fetches = emu.counters.token_fetches,
    faults = emu.counters.faults, requests = emu.requests_total,
    callbacks = emu.callbacks and emu.callbacks:counters() or {} }
end

routes["POST /__emulator/counters/reset"] = function(emu)
  emu.counters = { endpoints = {}, token_fetches = {}, faults = {} }
  emu.requests_total = 0
  return { ok = true }
end

routes["GET /__emulator/clock"] = function(emu)
  return { now = emu:now(), offset = emu.state.clock_offset }
end

routes["POST /__emulator/clock"] = function(emu, _, b)
  if type(b.advance) == "number" then
    if b.advance < 0 then return nil, "advance must be >= 0 (the clock never goes back)" end
    emu.state.clock_offset = emu.state.clock_offset + b.advance
  elseif type(b.set) == "number" then
    emu.state.clock_offset = emu.state.clock_offset + (b.set - emu:now())
  else
    return nil, "give {\"advance\": seconds} or {\"set\": unix_seconds}"
  end
  emu:touch()
  for _, m in ipairs(emu.modules) do if m.tick then m:tick() end end
  return { now = emu:now(), offset = emu.state.clock_offset }
end

routes["GET /__emulator/requests"] = function(emu)
  local out, log, pos = util.array(), emu.request_log, emu.request_log_pos
  for i = 0, 199 do
    local e = log[(pos - 1 + i) % 200 + 1]
    if e then
      e = util.copy(e)
      if e.json then e.shape, e.json = require("wxhw.emulator.validate").shape(e.json), nil end
      out[#out + 1] = e
    end
  end
  return { requests = out }
end

routes["GET /__emulator/faults"] = function(emu)
  return { faults = util.array(emu.faults) }
end

routes["POST /__emulator/faults"] = function(emu, _, b)
  local list = b.faults or { b }
  local ids = util.array()
  for _, f in ipairs(list) do
    local ok, err = add_fault(emu, f)
    if not ok then return nil, err end
    ids[#ids + 1] = ok.id
  end
  return { ok = true, ids = ids }
end

routes["DELETE /__emulator/faults"] = function(emu)
  local n = #emu.faults
  emu.faults = {}
  return { ok = true, removed = n }
end
routes["POST /__emulator/faults/clear"] = routes["DELETE /__emulator/faults"]

routes["POST /__emulator/reset"] = function(emu)
  emu:reset()
  return { ok = true }
end

routes["POST /__emulator/apps"] = function(emu, _, b)
  if type(b.appid) ~= "string" or type(b.secret) ~= "string" then return nil, "need appid and secret" end
  emu.state.apps[b.appid] = { secret = b.secret, kind = b.kind or "mp" }
  emu:touch()
  return { ok = true }
end

routes["GET /__emulator/tokens"] = function(emu, req)
  local list = util.array()
  local now = emu:now()
  for v, rec in pairs(emu.state.tokens) do
    if not req.q.owner or rec.owner == req.q.owner then
      list[#list + 1] = { access_token = v, kind = rec.kind, owner = rec.owner, via = rec.via,
        expires_in = math.floor(rec.expires - now), valid = emu.tokens:check(v) ~= nil }
    end
  end
  table.sort(list, function(a, b) return a.expires_in > b.expires_in end)
  return { tokens = list }
end

routes["POST /__emulator/tokens/invalidate"] = function(emu, _, b)
  if type(b.access_token) == "string" then
    return { ok = emu.tokens:invalidate(b.access_token), invalidated = 1 }
  elseif type(b.owner) == "string" or type(b.appid) == "string" then
    return { ok = true, invalidated = emu.tokens:invalidate_owner(b.owner or b.appid) }
  end
  return nil, "give access_token or appid/owner"
end

routes["POST /__emulator/shutdown"] = function(emu)
  emu:save() -- before answering, so a caller may kill us right after
  emu:stop()
  return { ok = true }
end

routes["GET /__emulator/"] = function(emu)
  local list = util.array()
  for k in pairs(routes) do list[#list + 1] = k end
  for k in pairs(emu.control_routes) do list[#list + 1] = k end
  table.sort(list, function(a, b) return a:sub(a:find(" ") + 1) .. a < b:sub(b:find(" ") + 1) .. b end)
  -- product routes as Emu:handle keys them (a prefix route ends in "*")
  local product = util.array()
  for k in pairs(emu.routes) do product[#product + 1] = k end
  for _, pr in ipairs(emu.prefix_routes) do product[#product + 1] = pr[1] .. "*" end
  table.sort(product)
  return { control = list, routes = product, docs = "docs/emulator.md" }
end

return function(emu, req)
  local key = req.method .. " " .. req.path
  local fn = routes[key] or (emu.control_routes and emu.control_routes[key])
  if not fn then return emu:json({ error = "no control endpoint " .. key }, 404) end
  local b = {}
  if req.body ~= "" then
    b = util.decode(req.body)
    if type(b) ~= "table" then return emu:json({ error = "body must be a JSON object" }, 400) end
  end
  local ok, res, err = pcall(fn, emu, req, b)
  if not ok then return emu:json({ error = tostring(res) }, 500) end
  if res == nil then return emu:json({ error = err or "bad request" }, 400) end
  if type(res) == "table" and (res.defer or (res.status and res.body)) then return res end
  return emu:json(res)
end

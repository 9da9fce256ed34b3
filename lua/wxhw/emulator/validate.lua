--- The emulator's one request validator: checks a request against its entry
-- in wxhw.emulator.contract (token, method, body, query, path parameter,
-- every field's JSON type and limits) before the route function runs.
--
-- `M.fields` is a pure function (Lua 5.4 and LuaJIT) so specs can check
-- samples against the table without a server; `M.check` answers the way the
-- platform does (WeChat/WeCom errcode JSON, or a signed Pay error).
local M = {}

local floor, type, pairs, ipairs = math.floor, type, pairs, ipairs

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

-- JSON type of a decoded value, as the contract names them.
local function json_type(v)
  local t = type(v)
  if t == "string" or t == "boolean" then return t end
  if t == "number" then return (v == floor(v) and v - v == 0) and "integer" or "number" end -- inf, nan: number
  if t == "table" then
    if next(v) == nil then return "empty" end
    return is_array(v) and "array" or "object"
  end
  return "null"
end
M.json_type = json_type

local function type_ok(want, v)
  local got = json_type(v)
  if want == got then return true end
  if want == "number" then return got == "integer" end
  if got == "empty" then return want == "array" or want == "object" end
  if want == "uint" then return got == "string" and v:match("^%d+$") ~= nil and #v <= 15 end
  return false
end

--- The shape of a decoded JSON value: its JSON type, objects as
-- { key = shape }, arrays as { shape of the first item } (empty: {}).
function M.shape(v)
  local t = json_type(v)
  if t == "object" then
    local out = {}
    for k, x in pairs(v) do out[k] = M.shape(x) end
    return out
  elseif t == "array" then
    return { M.shape(v[1]) }
  elseif t == "empty" then
    return {}
  end
  return t
end

-- "[^<class>]" for each allowed-characters class, made once.
local NOT_IN = setmetatable({}, { __index = function(t, chars)
  local p = "[^" .. chars .. "]"
  t[chars] = p
  return p
end })

local check_value

-- Checks one value against a field spec; returns nil or kind, path.
function check_value(spec, v, path)
  local want = spec[2] or spec.type
  if not type_ok(want, v) then return "type", path end
  if want == "string" or want == "uint" then
    if spec.min and #v < spec.min then return #v == 0 and "missing" or "len", path end
    if spec.max and #v > spec.max then return "len", path end
    if spec.chars and v:find(NOT_IN[spec.chars]) then return "chars", path end
  end
  local n = want == "uint" and tonumber(v) or type(v) == "number" and v or nil
  if n and ((spec.least and n < spec.least) or (spec.most and n > spec.most)) then return "range", path end
  if spec.enum then
    local hit = false
    for _, e in ipairs(spec.enum) do if e == v then hit = true; break end end
    if not hit then return "enum", path end
  end
  if type(v) == "table" then
    if want == "array" then
      if (spec.min and #v < spec.min) or (spec.max and #v > spec.max) then return "len", path end
      if spec.items then
        for i, x in ipairs(v) do
          local kind, p = check_value(spec.items, x, path .. "[" .. i .. "]")
          if kind then return kind, p, spec.items end
        end
      end
    elseif spec.fields then
      local kind, p, s = M.fields(v, spec.fields, path .. ".")
      if kind then return kind, p, s end
    elseif spec.values then
      for k, x in pairs(v) do
        local kind, p, s = check_value(spec.values, x, path .. "." .. tostring(k))
        if kind then return kind, p, s or spec.values end
      end
    end
  end
end

--- Checks an object (decoded JSON body, or query table) against a list of
-- field specs. Returns nil when it conforms, else kind ("missing", "type",
-- "len", "chars", "range", "enum"), the field path and the field's spec.
function M.fields(obj, specs, prefix)
  prefix = prefix or ""
  for _, spec in ipairs(specs) do
    local name = spec[1]
    local v = obj[name]
    if v == nil and spec.alias then v = obj[spec.alias] end
    if v == nil then
      if spec.req then return "missing", prefix .. name, spec end
    else
      local kind, p, s = check_value(spec, v, prefix .. name)
      if kind then return kind, p, s or spec end
    end
  end
end

--- The errcode (or Pay code) a violation gets: the field's own for that kind,
-- else the field's, else the entry's, else 47001 "data format error".
function M.errcode(entry, spec, kind)
  return spec and (spec["err_" .. kind] or spec.err) or entry.err or 47001
end

local WHY = { missing = "is required", type = "has the wrong JSON type", len = "is out of its length limits",
  chars = "has characters outside its allowed set", range = "is out of range", enum = "is not an allowed value" }

--- The errmsg for an errcode's meaning in the contract: without the
-- contract's own trailing note in parentheses ("(chosen)", "(per device)",
-- "(msg over 5 KB)"), which WeChat does not send.
function M.errmsg(meaning) return (meaning:gsub("%s*%b()$", "")) end

local function refuse(emu, req, entry, code, hint)
  req.contract = "refused: " .. hint
  if entry.style == "pay" then return emu.pay:error(req, code.status, code.code, hint) end
  local msg = entry.errcodes and entry.errcodes[code] and M.errmsg(entry.errcodes[code]) or emu:errmsg(code)
  return emu:err(code, msg .. " hint: " .. hint)
end

local function token_check(emu, req, entry)
  local t = entry.token
  local rec, code = emu.tokens:check(req.q[t.param])
  if not rec then return nil, code end
  if t.kinds and not t.kinds[rec.kind] then return nil, t.wrong or 40001 end
  req.auth = rec
  return rec
end

--- Runs the contract checks for `entry` on `req`. Returns nil when the
-- request may go on to the route (req.auth, req.json set), else the answer.
function M.check(emu, req, entry)
  if entry.token and entry.token.where == "query" then
    local ok, code = token_check(emu, req, entry)
    if not ok then
      req.contract = "refused: token"
      return emu:err(code)
    end
  elseif entry.style == "pay" then
    local bad = emu.pay:authenticate(req, entry)
    if bad then req.contract = "refused: authorization"; return bad end
  end
  if req.method ~= entry.method then
    if entry.style == "pay" then
      return refuse(emu, req, entry, { status = 405, code = "METHOD_NOT_ALLOWED" }, "use " .. entry.method)
    end
    req.contract = "refused: method"
    return emu:err(entry.method == "POST" and 43002 or 43001)
  end
  local kind, path, spec
  if entry.body then
    local b, bad = emu:body_json(req)
    if not b then req.contract = "refused: body"; return bad end
    kind, path, spec = M.fields(b, entry.body)
  end
  if not kind and entry.query then kind, path, spec = M.fields(req.q, entry.query) end
  if not kind and entry.path_param then
    local p = entry.path_param
    local v = require("wxhw.emulator.util").urldecode(req.path:sub(#entry.prefix + 1))
    kind, path = check_value(p, v, p[1])
    spec = p
  end
  if kind then
    local code = M.errcode(entry, spec, kind)
    if entry.style == "pay" then code = { status = 400, code = code } end
    return refuse(emu, req, entry, code, path .. " " .. WHY[kind])
  end
  req.contract = "ok"
end

return M

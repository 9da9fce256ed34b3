--- docs/emulator.md's endpoint reference, generated from the emulator's
-- contract (wxhw.emulator.contract): `wxhw emulator --contract-md [FILE]`
-- prints it, or rewrites the section between the markers in FILE.
-- Plain Lua (5.4 and LuaJIT): the docs spec runs it on both.
local contract = require "wxhw.emulator.contract"

local M = {}

M.BEGIN = "<!-- contract:begin (generated from lua/wxhw/emulator/contract/ by `wxhw emulator --contract-md docs/emulator.md`; do not edit) -->"
M.END = "<!-- contract:end -->"

local TITLES = { tokens = "Access tokens", mp = "Mini Program hardware (`api.weixin.qq.com`)",
  wmpf = "WMPF runtime (`/wxa/business/runtime/`)", wecom = "WeCom openhw (`qyapi.weixin.qq.com/cgi-bin/openhw/`)",
  pay = "WeChat Pay APIv3 (`api.mch.weixin.qq.com`)" }

-- "%w_%-" -> "0-9A-Za-z_-"
local function chars(c) return (c:gsub("%%w", "0-9A-Za-z"):gsub("%%(.)", "%1")) end

local function cell(s) return (tostring(s):gsub("|", "\\|"):gsub("\n", " ")) end

local function ftype(f)
  local t = f[2] or f.type
  if t == "array" and f.items then return "array of " .. ftype(f.items) end
  return t
end

local function limits(f)
  local out = {}
  local t = f[2] or f.type
  if f.min or f.max then
    local unit = t == "array" and " items" or " bytes"
    if f.min and f.max then out[#out + 1] = f.min .. "–" .. f.max .. unit
    elseif f.max then out[#out + 1] = "≤ " .. f.max .. unit
    elseif f.min == 1 then out[#out + 1] = "non-empty"
    else out[#out + 1] = "≥ " .. f.min .. unit end
  end
  if f.least or f.most then out[#out + 1] = "value " .. (f.least or "") .. "–" .. (f.most or "") end
  if f.chars then out[#out + 1] = "[" .. chars(f.chars) .. "]" end
  if f.enum then
    local e = {}
    for i, v in ipairs(f.enum) do e[i] = tostring(v) end
    out[#out + 1] = "one of " .. table.concat(e, ", ")
  end
  if f.alias then out[#out + 1] = "or `" .. f.alias .. "`" end
  if f.src then out[#out + 1] = f.src end
  return table.concat(out, "; ")
end

local KINDS = { "missing", "type", "len", "chars", "range", "enum" }

local function errcodes(entry, f)
  local base = f.err or entry.err or 47001
  local out = { tostring(base) }
  for _, k in ipairs(KINDS) do
    local c = f["err_" .. k]
    if c and c ~= base then out[#out + 1] = k .. " " .. tostring(c) end
  end
  return table.concat(out, "; ")
end

-- Rows for a field list, nested fields as path.name, array items as name[].
local function field_rows(entry, fields, prefix, rows)
  for _, f in ipairs(fields) do
    local name = prefix .. f[1]
    rows[#rows + 1] = "| `" .. name .. "` | " .. ftype(f) .. " | " .. (f.req and "yes" or "no") .. " | "
      .. cell(limits(f)) .. " | " .. errcodes(entry, f) .. " |"
    local inner = f.items or f.values
    local sub = f.items and "[]." or f.values and ".*." or "."
    if inner and inner.fields then field_rows(entry, inner.fields, name .. sub, rows)
    elseif f.fields then field_rows(entry, f.fields, name .. ".", rows) end
  end
end

local function response(fields, prefix, out)
  for _, f in ipairs(fields) do
    out[#out + 1] = "`" .. prefix .. f[1] .. "` " .. ftype(f)
    local inner = f.items and f.items.fields or f.fields
    if inner then response(inner, prefix .. f[1] .. (f.items and "[]." or "."), out) end
  end
  return out
end

local function sorted_codes(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. " " .. t[k] end
  return table.concat(out, "; ")
end

local function token_line(e)
  local t = e.token
  if not t then return "none: the credentials are request fields" end
  if t.where == "header" then return t.says end
  local s = "`" .. t.param .. "` in the query (" .. (t.says or "") .. ")"
  if t.wrong and t.wrong ~= 40001 then s = s .. "; a token of another kind gets " .. t.wrong end
  return s
end

local function entry_md(e, out)
  out[#out + 1] = "#### `" .. e.method .. " " .. e.path .. "`"
  out[#out + 1] = ""
  out[#out + 1] = "* Source: " .. e.source
  out[#out + 1] = "* Token: " .. token_line(e)
  if e.qps then out[#out + 1] = "* Rate: " .. e.qps .. " requests a second per client, counted before authentication" end
  local rows = {}
  if e.body then field_rows(e, e.body, "", rows) end
  if e.query then field_rows(e, e.query, "", rows) end
  if e.path_param then field_rows(e, { e.path_param }, "", rows) end
  if #rows > 0 then
    local where = e.body and "JSON body" or e.query and "query" or "path"
    out[#out + 1] = ""
    out[#out + 1] = "| " .. where .. " field | type | required | limits | refused with |"
    out[#out + 1] = "|---|---|---|---|---|"
    for _, r in ipairs(rows) do out[#out + 1] = r end
    out[#out + 1] = ""
  end
  if e.response then out[#out + 1] = "* Response: " .. table.concat(response(e.response, "", {}), ", ") end
  if e.errcodes then out[#out + 1] = "* Errcodes: " .. cell(sorted_codes(e.errcodes)) end
  for _, n in ipairs(e.notes or {}) do out[#out + 1] = "* " .. n end
  out[#out + 1] = ""
end

--- The generated section, markers included.
function M.render()
  local chosen, n = 0, #contract.entries
  for _, e in ipairs(contract.entries) do if contract.chosen(e) then chosen = chosen + 1 end end
  local out = { M.BEGIN, "", "## Endpoint reference (the emulator's contract)", "",
    ("%d endpoints: %d with an official page, official SDK/demo, sample or seed as their source, %d undocumented "
      .. "(the emulator's choice, marked \"undocumented: chosen\"). Limits and errcodes the sources do not give are "
      .. "marked \"chosen\" where they appear: the emulator takes the strictest plausible reading."):format(
      n, n - chosen, chosen), "",
    "Every request is checked against this table before the endpoint runs, in this order: the token (41001 "
      .. "missing, 40001 unknown or of another kind, 42001 expired) or, for Pay, the rate limit and the "
      .. "Authorization; the method (43002 for POST endpoints, 43001 for GET, Pay 405); a POST body (44002 empty, "
      .. "47001 not a JSON object); then every field in the order listed (\"refused with\": the errcode for any "
      .. "violation, then the errcode for a particular kind of violation: missing, type, len, chars, range, enum). "
      .. "Pay answers HTTP 400 `PARAM_ERROR`. Behaviour (unknown ids, quotas, per-device and per-record results) "
      .. "is the endpoint's own and described above.", "" }
  local product
  for _, e in ipairs(contract.entries) do
    if e.product ~= product then
      product = e.product
      out[#out + 1] = "### " .. TITLES[product]
      out[#out + 1] = ""
    end
    entry_md(e, out)
  end
  out[#out + 1] = M.END
  return table.concat(out, "\n")
end

--- Replaces the generated section of a document's text (appended when the
-- markers are missing). Returns the new text.
function M.splice(text)
  local b = text:find("<!-- contract:begin", 1, true)
  local _, e = text:find(M.END, 1, true)
  if b and e then return text:sub(1, b - 1) .. M.render() .. text:sub(e + 1) end
  return text .. "\n" .. M.render() .. "\n"
end

--- The generated section currently in a document's text (nil when absent).
function M.current(text)
  local b = text:find("<!-- contract:begin", 1, true)
  local _, e = text:find(M.END, 1, true)
  return b and e and text:sub(b, e) or nil
end

return M

--- Flat XML as WeChat and WeCom push it: parse and encode `<xml>` messages,
-- CDATA sections, and one element's text out of an unparsed envelope.
local M = {}

local byte, find, sub = string.byte, string.find, string.sub

-- Index just past a run of XML whitespace at i.
local function skip_ws(s, i)
  local b = byte(s, i)
  while b == 32 or b == 9 or b == 10 or b == 13 do i = i + 1; b = byte(s, i) end
  return i
end

-- The text of the first <name> element: <name><![CDATA[v]]></name> (blanks
-- allowed around the CDATA) or <name>v</name> with no '<' in v. Plain
-- searches, each byte read a bounded number of times: the body is read
-- before any signature check, and the unanchored pattern this replaces,
-- <name>%s*<!%[CDATA%[(.-)%]%]>, scanned to the end from every opener
-- (quadratic: 1 MB of "<Encrypt><![CDATA[" took minutes).
function M.field(xml, name)
  local open, close = "<" .. name .. ">", "</" .. name .. ">"
  local _, b = find(xml, open, 1, true)
  if not b then return nil end
  local i = skip_ws(xml, b + 1)
  if sub(xml, i, i + 8) == "<![CDATA[" then
    local from = i + 9
    local e = find(xml, "]]>", from, true)
    while e do -- the first "]]>" that is followed by the closing tag
      local j = skip_ws(xml, e + 3)
      if sub(xml, j, j + #close - 1) == close then return sub(xml, from, e - 1) end
      e = find(xml, "]]>", e + 1, true)
    end
    return nil
  end
  local lt = find(xml, "<", b + 1, true)
  if lt and sub(xml, lt, lt + #close - 1) == close then return sub(xml, b + 1, lt - 1) end
  return nil
end

local function unwrap(v)
  local c = v:match("^%s*<!%[CDATA%[(.-)%]%]>%s*$")
  if c then return c end
  return (v:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&apos;", "'"):gsub("&amp;", "&"))
end

--- Flat XML (<xml><A>..</A><B><![CDATA[..]]></B></xml>) --> table of strings.
-- Nested elements are kept as their inner XML text.
function M.parse(s)
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

--- s as one CDATA section (a "]]>" inside is split across two).
function M.cdata(s) return "<![CDATA[" .. tostring(s):gsub("%]%]>", "]]]]><![CDATA[>") .. "]]>" end
local cdata = M.cdata

--- Flat table --> <xml>…</xml> (keys sorted so replies are reproducible).
function M.encode(t)
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

return M

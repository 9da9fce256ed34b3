--- URL pieces shared by the client, the servers and the emulator: percent
-- encoding, query strings both ways, and header lookup in any case.
local json = require "wxhw.json"

local M = {}

--- Percent-encodes everything but RFC 3986's unreserved characters.
function M.urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end
local urlencode = M.urlencode

--- Query string with keys sorted (stable for signatures and caches); nil
-- and false values are left out, a JSON BigInt goes as its digits.
function M.encode_query(q)
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if v ~= nil and v ~= false then
      if getmetatable(v) == json.BigInt then v = v[1] end
      parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(v)
    end
  end
  return table.concat(parts, "&")
end

local find, sub = string.find, string.sub

--- Percent-decoding of a query key or value ('+' is a space).
function M.unescape(s)
  if not find(s, "%", 1, true) and not find(s, "+", 1, true) then return s end
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
local unescape = M.unescape

--- "a=1&b=%2F" --> { a = "1", b = "/" } (first value wins for repeated keys;
-- pairs with an empty key are skipped). At most max_args pairs (default 100,
-- as the nginx adapter reads): the rest is ignored, so a query of many '&'
-- costs no more than its length. Plain finds (memchr), not patterns: queries
-- carry 150-byte tokens.
function M.parse_query(qs, max_args)
  local t = {}
  if not qs or qs == "" then return t end
  local left, n, pos = max_args or 100, #qs, 1
  while pos <= n and left > 0 do
    local amp = find(qs, "&", pos, true) or n + 1
    if amp > pos then
      left = left - 1
      local eq = find(qs, "=", pos, true)
      local k, v
      if eq and eq < amp then k, v = sub(qs, pos, eq - 1), sub(qs, eq + 1, amp - 1)
      else k, v = sub(qs, pos, amp - 1), "" end
      if k ~= "" then
        k = unescape(k)
        if t[k] == nil then t[k] = unescape(v) end
      end
    end
    pos = amp + 1
  end
  return t
end

--- A header's value from a table keyed in any case (a repeated header's
-- first value); nil when absent.
function M.header(headers, name)
  if not headers then return nil end
  local v = headers[name]
  if v == nil then
    local lname = name:lower()
    for k, val in pairs(headers) do
      if type(k) == "string" and k:lower() == lname then v = val; break end
    end
  end
  if type(v) == "table" then v = v[1] end
  return v
end

return M

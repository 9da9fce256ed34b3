--- Parses Prometheus text exposition with an independent parser: Debian's
-- python3-prometheus-client (prometheus_client.parser). A malformed text
-- raises (the parser's message in the error).
--
--   local prom = require "support.prometheus"
--   local m = prom.parse(text)
--   m.value("wxhw_callback_pushes_total", { product = "mp", outcome = "ok" })  -- sum over matching samples
--   m.types.wxhw_callback_pushes -- "counter" (the parser drops _total from family names)
local cjson = require "cjson"

local M = {}

-- Debian's interpreter: a python3 earlier on PATH (pyenv) may lack the module
local PYTHON = io.open("/usr/bin/python3", "r") and "/usr/bin/python3" or "python3"

local SCRIPT = [[
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        out.append({"family": f.name, "type": f.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
]]

function M.parse(text)
  local input, script = os.tmpname(), os.tmpname()
  local f = assert(io.open(input, "wb")); f:write(text); f:close()
  f = assert(io.open(script, "wb")); f:write(SCRIPT); f:close()
  local p = io.popen(("%s %s < %s 2>&1"):format(PYTHON, script, input))
  local out = p:read("*a")
  p:close()
  os.remove(input); os.remove(script)
  local ok, samples = pcall(cjson.decode, out)
  if not ok or type(samples) ~= "table" then error("prometheus_client could not parse the text: " .. out, 2) end
  local types = {}
  for _, s in ipairs(samples) do types[s.family] = s.type end
  local function value(name, want)
    local total, found = 0, false
    for _, s in ipairs(samples) do
      if s.name == name then
        local match = true
        for k, v in pairs(want or {}) do if s.labels[k] ~= v then match = false end end
        if match then total, found = total + s.value, true end
      end
    end
    return found and total or nil
  end
  return { samples = samples, types = types, value = value }
end

return M

--- The push envelope as a full JSON decoder reads it: the Encrypt (else
-- encrypt) string, or nil. Specs compare wxhw's strict scan against it.
local cjson = require "cjson.safe"

return function(body)
  local t = cjson.decode(body)
  if type(t) ~= "table" then return nil end
  local v = t.Encrypt or t.encrypt
  return type(v) == "string" and v or nil
end

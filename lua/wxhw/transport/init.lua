--- Picks the HTTP transport: cosockets inside nginx (never a blocking call in a
-- worker), libcurl everywhere else. Both present the same interface:
--
--   local t = require("wxhw.transport").new{ timeout = 10, connect_timeout = 5,
--     max_body = n, ca_file = path (curl), proxy = url (curl), resolve = { host = ip } (ngx),
--     pool_size = n (ngx), keepalive = seconds (ngx), kind = "curl"|"ngx" (force) }
--   t:request{ method =, url =, headers =, body =, timeout = } → response | nil, err
--   t:batch(requests, { concurrency = n })                    → results in order
--   t.kind, t.now() (seconds, float), t.sleep(seconds)
local M = {}

local clock = require "wxhw.clock"

--- "ngx" when running inside nginx-lua (even in init_by_lua, where the object
-- may be built for later use), else "curl".
function M.default_kind()
  return clock.in_nginx() and "ngx" or "curl"
end

function M.new(o)
  o = o or {}
  local kind = o.kind or M.default_kind()
  if kind ~= "curl" and kind ~= "ngx" then error("wxhw.transport: unknown kind " .. tostring(kind), 2) end
  return require("wxhw.transport." .. kind).new(o)
end

return M

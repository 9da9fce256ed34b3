--- The libcurl transport (wxhw.http) for scripts, batch jobs and the REPL.
-- Blocking: never use it inside an nginx worker (wxhw.transport picks ngx there).
local http = require "wxhw.http"
local clock = require "wxhw.clock"

local M = {}

local T = { kind = "curl", now = clock.now, sleep = clock.sleep }
T.__index = T

local PASS = { "timeout", "connect_timeout", "proxy", "ca_file", "max_connections", "http2",
  "user_agent", "max_body", "max_request_body", "max_idle", "engine" }

function M.new(o)
  o = o or {}
  local opts = {}
  for _, k in ipairs(PASS) do opts[k] = o[k] end
  local h, err = http.new(opts)
  if not h then return nil, err end
  return setmetatable({ http = h }, T)
end

function T:request(req) return self.http:request(req) end
function T:batch(reqs, o) return self.http:batch(reqs, o) end
function T:close() self.http:close() end
function T:__tostring() return "wxhw.transport.curl: " .. tostring(self.http) end

return M

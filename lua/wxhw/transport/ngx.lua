--- The cosocket transport for OpenResty / nginx-lua: never blocks a worker.
-- Same interface as wxhw.transport.curl; batch runs light threads
-- (ngx.thread.spawn). TLS trust comes from nginx's `lua_ssl_trusted_certificate`
-- (verification is always on); host names need a `resolver` directive or the
-- `resolve = { host = ip }` option. Options: timeout, connect_timeout,
-- max_body, pool_size, keepalive (idle seconds), resolve, user_agent.
local http1 = require "wxhw.transport.http1"
local errors = require "wxhw.errors"
local clock = require "wxhw.clock"

local M = {}

local T = { kind = "ngx", now = clock.now, sleep = clock.sleep }
T.__index = T

local KNOWN = { timeout = true, connect_timeout = true, max_body = true, max_request_body = true, pool_size = true, keepalive = true,
  resolve = true, user_agent = true, ca_file = true, kind = true, max_connections = true, http2 = true, max_idle = true }

function M.new(o)
  o = o or {}
  for k in pairs(o) do
    if not KNOWN[k] and k ~= "proxy" then error("wxhw.transport.ngx: unknown option " .. tostring(k), 2) end
  end
  if o.proxy then
    return errors.fail("input", "the nginx transport has no forward-proxy support; route through nginx instead")
  end
  local opts = {
    timeout = o.timeout, connect_timeout = o.connect_timeout, max_body = o.max_body,
    max_request_body = o.max_request_body,
    pool_size = o.pool_size or o.max_connections, keepalive = o.keepalive or o.max_idle,
    resolve = o.resolve, user_agent = o.user_agent,
  }
  return setmetatable({ opts = opts }, T)
end

function T:request(req)
  return http1.request(req, self.opts)
end

function T:batch(reqs, o)
  if type(reqs) ~= "table" then error("batch: requests must be a table", 2) end
  local n = #reqs
  for i = 1, n do
    if type(reqs[i]) ~= "table" then error("batch: requests[" .. i .. "] is not a table", 2) end
  end
  local conc = (o and o.concurrency) or 16
  if type(conc) ~= "number" or conc < 1 or conc ~= math.floor(conc) then
    error("batch: concurrency must be a positive integer", 2)
  end
  local results = {}
  if n == 0 then return results end
  local nexti = 1
  local function worker()
    while nexti <= n do
      local i = nexti
      nexti = i + 1
      local res, err = http1.request(reqs[i], self.opts)
      results[i] = res or err
    end
  end
  local threads = {}
  for k = 1, math.min(conc, n) do threads[k] = ngx.thread.spawn(worker) end
  local failure
  for k = 1, #threads do
    local ok, err = ngx.thread.wait(threads[k])
    if not ok and not failure then failure = err end
  end
  if failure then error(failure, 2) end
  return results
end

function T:close() end

function T:__tostring()
  return ("wxhw.transport.ngx (timeout=%s pool_size=%s)"):format(tostring(self.opts.timeout or 10),
    tostring(self.opts.pool_size or 64))
end

return M

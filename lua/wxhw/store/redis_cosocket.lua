--- A Redis connection for the token stores inside nginx: the same
-- `command(name, ...)` contract as the C wxhw.TokenRedis (reply | nil, err with
-- kind = "store" and redis_error for error replies), over cosockets with
-- Debian's lua-nginx-redis (`nginx.redis`, i.e. lua-resty-redis) and its
-- connection pool. Never blocks a worker.
local crypto = require "wxhw.crypto"
local errors = require "wxhw.errors"

local M = {}
M.__index = M

local function driver()
  local ok, mod = pcall(require, "nginx.redis")          -- Debian lua-nginx-redis
  if not ok then ok, mod = pcall(require, "resty.redis") end -- OpenResty's name
  if not ok then error("wxhw: the ngx_shared store over Redis needs lua-nginx-redis (resty.redis)", 3) end
  return mod
end

--- opts: host (127.0.0.1), port (6379), password, db, timeout (s, 1),
-- pool_size (64), keepalive (s, 30).
function M.new(opts)
  opts = opts or {}
  return setmetatable({ host = opts.host or "127.0.0.1", port = opts.port or 6379, password = opts.password,
                        db = opts.db, timeout = opts.timeout or 1, pool_size = opts.pool_size or 64,
                        keepalive = opts.keepalive or 30, driver = driver(),
                        -- a pooled connection keeps its SELECT and AUTH: one pool per db and credentials
                        pool = table.concat({ opts.host or "127.0.0.1", opts.port or 6379, opts.db or 0,
                          opts.password and crypto.hex(crypto.sha256(opts.password)):sub(1, 16) or "" }, ":") }, M)
end

local null = rawget(_G, "ngx") and ngx.null

local function convert(v)
  if v == null then return false end
  if type(v) == "table" then
    local out = {}
    for i = 1, #v do
      local x = v[i]
      if type(x) == "table" and x[1] == false then out[i] = false else out[i] = convert(x) end
    end
    return out
  end
  return v
end

function M:command(name, ...)
  local red = self.driver:new()
  red:set_timeout(self.timeout * 1000)
  local where = self.host .. ":" .. self.port
  local ok, err = red:connect(self.host, self.port, { pool = self.pool })
  if not ok then return errors.fail("store", "cannot connect to redis at " .. where .. ": " .. tostring(err)) end
  if red:get_reused_times() == 0 then
    if self.password then
      ok = red:auth(self.password)
      if not ok then red:close(); return errors.fail("store", "redis at " .. where .. " refused the password") end
    end
    if self.db then
      ok, err = red:select(self.db)
      if not ok then red:close(); return errors.fail("store", "redis at " .. where .. ": cannot select db: " .. tostring(err)) end
    end
  end
  local res
  res, err = red[name:lower()](red, ...)
  if res == nil then
    red:close()
    -- closed by the server (idle, restart): the command did not run and may
    -- be sent again; after a timeout it may still run
    local closed = err == "closed" or err == "broken pipe" or err == "connection reset by peer"
    return errors.fail("store", "redis at " .. where .. ": " .. tostring(err), { closed = closed or nil })
  end
  red:set_keepalive(self.keepalive * 1000, self.pool_size)
  if res == false and err then
    return errors.fail("store", "redis: " .. tostring(err), { redis_error = true })
  end
  return convert(res)
end

function M:close() end

function M:__tostring() return "wxhw redis (cosockets) " .. self.host .. ":" .. self.port end

return M

--- One Redis connection for every Redis-backed part of wxhw: the token
-- store, the kv store, the Pay limiter and the replay cache.
--
--   local conn, err = require("wxhw.redis").connect{ host =, port =, db =, password =, timeout = }
--   conn:command("SET", "k", "v")  --> reply | nil, err
--
-- Outside nginx the connection is hiredis (C, wxhw.TokenRedis, blocking);
-- inside nginx it is a cosocket one (hiredis would block the worker). Both
-- keep one contract: `command(name, ...)` returns the reply (false for a nil
-- reply) or nil and a kind = "store" error, with `redis_error` set for an
-- error reply and `closed` when the server closed an idle connection (the
-- command did not run and may be sent again).
--
-- This module is the Lua façade of the core's hiredis class: the only one
-- that reaches it.
local clock = require "wxhw.clock"
local crypto = require "wxhw.crypto"
local errors = require "wxhw.errors"

local M = {}

------------------------------------------------------------ over cosockets

-- Debian's lua-nginx-redis (`nginx.redis`, i.e. lua-resty-redis) and its
-- connection pool. Never blocks a worker.
local Cosocket = {}
Cosocket.__index = Cosocket
M.Cosocket = Cosocket

local function driver()
  local ok, mod = pcall(require, "nginx.redis")          -- Debian lua-nginx-redis
  if not ok then ok, mod = pcall(require, "resty.redis") end -- OpenResty's name
  if not ok then error("wxhw: the ngx_shared store over Redis needs lua-nginx-redis (resty.redis)", 3) end
  return mod
end

--- opts: host (127.0.0.1), port (6379), password, db, timeout (s, 1),
-- pool_size (64), keepalive (s, 30).
function Cosocket.new(opts)
  opts = opts or {}
  return setmetatable({ host = opts.host or "127.0.0.1", port = opts.port or 6379, password = opts.password,
                        db = opts.db, timeout = opts.timeout or 1, pool_size = opts.pool_size or 64,
                        keepalive = opts.keepalive or 30, driver = driver(),
                        -- a pooled connection keeps its SELECT and AUTH: one pool per db and credentials
                        pool = table.concat({ opts.host or "127.0.0.1", opts.port or 6379, opts.db or 0,
                          opts.password and crypto.hex(crypto.sha256(opts.password)):sub(1, 16) or "" }, ":") },
                      Cosocket)
end

local ngx_ = clock.ngx()
local null = ngx_ and ngx_.null

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

function Cosocket:command(name, ...)
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

function Cosocket:close() end

function Cosocket:__tostring() return "wxhw redis (cosockets) " .. self.host .. ":" .. self.port end

------------------------------------------------------------------ connect

--- opts.conn when given (an existing connection is shared as is); inside
-- nginx a cosocket connection, made per command from the pool; else
-- hiredis, connected now (a down server is an error here; later outages
-- come back from command() and heal on the next one). Options: host, port,
-- db, password, timeout (s). Returns conn | nil, err.
function M.connect(opts)
  opts = opts or {}
  if opts.conn then return opts.conn end
  if clock.in_nginx() then return Cosocket.new(opts) end
  return require("wxhw.core").redis.connect{ host = opts.host, port = opts.port, db = opts.db,
                                             password = opts.password, timeout = opts.timeout }
end

----------------------------------------------------- commands and scripts

--- One command; a connection the server closed while idle (a restart) is
-- reopened and the command sent once more. Only then: after a timeout the
-- server may still run it, and a script sent twice may count twice.
function M.command(conn, ...)
  local res, err = conn:command(...)
  if res == nil and err and err.closed then res, err = conn:command(...) end
  return res, err
end

--- A server-side script, run as EVALSHA and loaded once when the server
-- does not know it (a new server, SCRIPT FLUSH, a restart):
--   local take = redis.script(src)
--   take(conn, nkeys, key1, ..., arg1, ...)  --> reply | nil, err
function M.script(src)
  local sha = crypto.hex(crypto.sha1(src))
  return function(conn, nkeys, ...)
    local res, err = M.command(conn, "EVALSHA", sha, nkeys, ...)
    if res == nil and err.redis_error and tostring(err.message):find("NOSCRIPT", 1, true) then
      local _, lerr = M.command(conn, "SCRIPT", "LOAD", src)
      if lerr then return nil, lerr end
      res, err = M.command(conn, "EVALSHA", sha, nkeys, ...)
    end
    return res, err
  end
end

return M

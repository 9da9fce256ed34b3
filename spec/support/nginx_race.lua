--- Runs Lua in several nginx workers at the same moment, for specs of state
-- the workers share (lua_shared_dict, shm files, Redis): each worker checks an
-- invariant on every operation and leaves its counts in a dict; the spec
-- reads them through one location once every worker is done.
--
--   local race = require "support.nginx_race"
--   local srv = race.start{
--     workers = 2,                         -- workers 0 .. workers-1 each run `run`
--     http_block = "lua_shared_dict kv 1m;", -- more dicts (ngx.shared.race is added)
--     prepare = [[ ... ]],                 -- optional, before the start barrier
--     run = [[ ... ]],                     -- the race: sees `role` (worker id) and `d` (ngx.shared.race)
--     report = [[ return ... ]],           -- the line /result answers; a "nil" in it: not done yet
--   }
--   local line = race.report(srv)          -- waits for a line without "nil" (error if none comes)
local nginx = require "support.nginx"
local http = require "socket.http"
local socket = require "socket"

local M = {}

function M.start(o)
  local workers = o.workers or 2
  return nginx.start{
    workers = workers,
    http_block = ([[
      lua_shared_dict race 1m;
      %s
      init_worker_by_lua_block {
        local role = ngx.worker.id()
        if role >= %d then return end
        ngx.timer.at(0, function()
          local d = ngx.shared.race
          %s
          d:incr("ready", 1, 0)
          while (d:get("ready") or 0) < %d do
            if ngx.worker.exiting() then return end -- a worker missing: stopped by the spec
            ngx.sleep(0.001)
          end
          ngx.update_time()
          %s
        end)
      }
    ]]):format(o.http_block or "", workers, o.prepare or "", workers, o.run),
    server_block = ([[
      location = /result {
        content_by_lua_block {
          local d = ngx.shared.race
          ngx.say((function() %s end)())
        }
      }
      %s]]):format(o.report, o.server_block or ""),
  }
end

function M.report(srv, seconds)
  local line
  for _ = 1, (seconds or 20) * 10 do
    line = http.request(srv.base_url .. "/result")
    if line and not line:find("nil", 1, true) then return (line:gsub("%s+$", "")) end
    socket.sleep(0.1)
  end
  error("the workers did not finish: " .. tostring(line) .. "\n" .. srv:error_log(), 2)
end

return M

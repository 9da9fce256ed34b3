--- A complete callback + call gateway from one configuration file.
--
-- As a program (Lua 5.4, after `make`): HTTP callbacks, call workers and the
-- media relay in one process (examples/gateway.conf.lua: a configuration for
-- the built-in emulator; it says how to send it a push):
--     lua5.4 examples/gateway.lua gateway.conf.lua
-- As the call daemon behind nginx (workers + relay, no HTTP):
--     lua5.4 examples/gateway.lua gateway.conf.lua --daemon
-- Inside nginx (examples/nginx.conf), handlers that never block:
--     require("gateway").nginx().mp   (reads $WXHW_GATEWAY_CONFIG)
--
-- The configuration file returns a table:
--   return {
--     mp = { token = "...", encoding_aes_key = "...(43)", appid = "wx..." },
--     wecom = { token = "...", encoding_aes_key = "...", receive_id = "ww...",
--               handlers = { bind = function(msg) ... end } },      -- optional
--     http = { host = "127.0.0.1", port = 8080 },                     -- program mode
--     calls = { socket_path = "/run/wxhw/calls.sock", ring_timeout = 30,
--               worker = { "wxhw", "call-worker", "--simulate" }, worker_log = "/var/log/wxhw-workers.log",
--               max_calls = 24,            -- calls this host carries; more are refused BUSY (default: per core)
--               redis = { host = "127.0.0.1", port = 6379 },            -- optional session store
--               notify_device = function(session) end,                 -- phone -> device: ring the device
--               on_transition = function(session, from, to) end },
--     relay = { host = "0.0.0.0", port = 7000, jitter_ms = 60 },      -- device media
--     dedup = { shm = "/dev/shm/wxhw-dedup.kv", entries = 100000 },  -- nginx: retransmissions
--     -- (recommended: a shm table all workers map; entries = peak pushes/s x 600 s;
--     --  without `dedup` the lua_shared_dict `dedup_dict` or "wxhw_callbacks" is used)
--   }
local M = {}

local function load_config(path)
  path = path or os.getenv("WXHW_GATEWAY_CONFIG")
  if not path then error("gateway: no configuration (argument or WXHW_GATEWAY_CONFIG)", 2) end
  local chunk, err = loadfile(path)
  if not chunk then error("gateway: cannot load " .. path .. ": " .. tostring(err), 2) end
  return chunk()
end
M.load_config = load_config

-- The HTTP handlers by path, given the calls object or a remote client.
local function routes(conf, calls_or_remote, dedup, stats)
  local callback = require "wxhw.callback"
  local r = {}
  if conf.mp then
    r["/wx/push"] = callback.mini_program{
      token = conf.mp.token, encoding_aes_key = conf.mp.encoding_aes_key, appid = conf.mp.appid,
      handlers = calls_or_remote:mp_handlers(), dedup = dedup, max_skew = conf.mp.max_skew,
    }
  end
  if conf.wecom then
    r["/wecom/openhw"] = callback.wecom{
      token = conf.wecom.token, encoding_aes_key = conf.wecom.encoding_aes_key, receive_id = conf.wecom.receive_id,
      handlers = conf.wecom.handlers or {}, dedup = dedup, unknown = "ack",
    }
  end
  if conf.pay then
    r["/pay/notify"] = callback.pay{ pay = conf.pay.client, handler = conf.pay.handler, dedup = dedup }
  end
  r["/healthz"] = function() return 200, { ["Content-Type"] = "text/plain" }, "ok" end
  if stats then
    r["/stats"] = function()
      return 200, { ["Content-Type"] = "application/json" }, require("cjson").encode(stats())
    end
  end
  return r
end

--- Handlers for nginx: { mp =, wecom =, pay =, healthz = }, built once per
-- worker. Calls go to the daemon over its unix socket (cosockets).
local nginx_cache
function M.nginx(path)
  if nginx_cache then return nginx_cache end
  local conf = load_config(path)
  local remote = require("wxhw.call.remote").new{ socket_path = conf.calls.socket_path }
  -- De-duplication in the shm kv table (one file every worker maps, sized by
  -- entries: pushes kept for the 600 s ttl), else a lua_shared_dict by name.
  local dedup = require("wxhw.callback.ngx").dedup(conf.dedup or conf.dedup_dict or "wxhw_callbacks")
  local r = routes(conf, remote, dedup)
  nginx_cache = { mp = r["/wx/push"], wecom = r["/wecom/openhw"], pay = r["/pay/notify"], healthz = r["/healthz"] }
  return nginx_cache
end

--- Builds the calls object, the supervisor and the relay.
function M.daemon(conf)
  local call = require "wxhw.call"
  local store = require("wxhw.call.store")
  local kv = conf.calls.redis and assert(store.redis(conf.calls.redis)) or store.memory()
  local calls = call.new{ store = kv, ring_timeout = conf.calls.ring_timeout, time_limit = conf.calls.time_limit,
                          notify_device = conf.calls.notify_device, on_transition = conf.calls.on_transition }
  local sup = assert(require("wxhw.call.supervisor").new{
    calls = calls, command = conf.calls.worker, socket_path = conf.calls.socket_path,
    appid = conf.mp and conf.mp.appid, log = conf.calls.worker_log, socket_mode = conf.calls.socket_mode,
    max_calls = conf.calls.max_calls,
  })
  local relay = require("wxhw.relay").new{ calls = calls, supervisor = sup,
                                           jitter_ms = conf.relay and conf.relay.jitter_ms }
  local relay_port
  if conf.relay then relay_port = relay:listen(conf.relay.host, conf.relay.port) end
  return { calls = calls, supervisor = sup, relay = relay, relay_port = relay_port, store = kv }
end

--- Program mode: returns the running pieces; `run()` loops forever.
function M.program(conf, daemon_only)
  local d = M.daemon(conf)
  local http
  if not daemon_only then
    local function stats()
      return { supervisor = d.supervisor.counters, relay = d.relay.counters, workers = d.supervisor:count() }
    end
    local router = require("wxhw.callback").router(routes(conf, d.calls, { store = d.store }, stats))
    http = assert(require("wxhw.httpserver").new{
      host = conf.http and conf.http.host, port = conf.http and conf.http.port,
      handler = function(method, path, query, headers, body) return router(method, path, query, headers, body) end,
    })
    d.http = http
  end
  function d.step()
    d.relay:step(0.005)
    if http then http:step(0) end
  end
  function d.run(seconds)
    local clock = require "wxhw.clock"
    local deadline = seconds and clock.monotonic() + seconds
    while not deadline or clock.monotonic() < deadline do d.step() end
  end
  return d
end

if arg and arg[0] and arg[0]:match("gateway%.lua$") and ... ~= "gateway" then
  dofile((arg[0]:match("^(.*)/") or ".") .. "/paths.lua") -- wxhw from this checkout
  local conf = load_config(arg[1])
  local d = M.program(conf, arg[2] == "--daemon")
  io.stdout:write(("WXHW_GATEWAY http=%s relay=%s calls=%s\n"):format(
    d.http and d.http.port or "-", d.relay_port or "-", conf.calls.socket_path))
  io.stdout:flush()
  d.run()
end

return M

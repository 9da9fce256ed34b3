--- A complete callback + call gateway from one configuration file.
--
--   gateway.program(conf)          HTTP callbacks, call workers and the media
--                                  relay in one process, on one wxhw.loop
--   gateway.program(conf, true)    the call daemon behind nginx (workers + relay)
--   gateway.nginx(path)            handlers for nginx that never block:
--                                  require("wxhw.gateway").nginx().mp (examples/nginx.conf;
--                                  path defaults to $WXHW_GATEWAY_CONFIG)
--   gateway.init(path)             for init_by_lua: refuses a bad configuration
--   gateway.validate(conf, mode)   every problem named, no secret
--   gateway.main(args)             the command line: CONFIG [--daemon | --check]
--                                  (examples/gateway.lua)
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
--     metrics = true,   -- GET /metrics (Prometheus text); nginx: lua_shared_dict wxhw_metrics,
--                       -- or { dict = "name", flush = 1 }; false/absent: no /metrics.
--                       -- With --daemon and `http`, the daemon serves its own /metrics
--                       -- (call states: calls run there, not in nginx) on that port
--     -- (recommended: a shm table all workers map; entries = peak pushes/s x 600 s;
--     --  without `dedup` the lua_shared_dict `dedup_dict` or "wxhw_callbacks" is used)
--   }
local clock = require "wxhw.clock"

local M = {}

local function load_config(path)
  path = path or os.getenv("WXHW_GATEWAY_CONFIG")
  if not path then error("gateway: no configuration (argument or WXHW_GATEWAY_CONFIG)", 2) end
  local chunk, err = loadfile(path)
  if not chunk then error("gateway: cannot load " .. path .. ": " .. tostring(err), 2) end
  return chunk()
end
M.load_config = load_config

local TEXT = { ["Content-Type"] = "text/plain; charset=utf-8" }

--- Checks a configuration before anything is built; `mode` is "nginx" or
-- "program". Returns true, or nil and one message naming every problem (and
-- no secret). Inside nginx, M.init() runs it in init_by_lua, so nginx
-- refuses to start rather than answer every push 500.
function M.validate(conf, mode)
  if type(conf) ~= "table" then return nil, "gateway: the configuration must return a table" end
  local problems = {}
  local function bad(msg) problems[#problems + 1] = msg end
  local function str(t, name, field)
    if type(t[field]) ~= "string" or t[field] == "" then bad(name .. "." .. field .. " must be a non-empty string") end
  end
  local function crypto(name, rid)
    local t = conf[name]
    if t == nil then return end
    if type(t) ~= "table" then return bad(name .. " must be a table") end
    str(t, name, "token"); str(t, name, rid)
    local ok, err = require("wxhw.msgcrypt").new{ token = "t", encoding_aes_key = t.encoding_aes_key, receive_id = "r" }
    if not ok then bad(name .. ".encoding_aes_key: " .. (type(t.encoding_aes_key) == "string" and err.message or "missing")) end
  end
  crypto("mp", "appid")
  crypto("wecom", "receive_id")
  if conf.pay ~= nil and (type(conf.pay) ~= "table" or conf.pay.client == nil or type(conf.pay.handler) ~= "function") then
    bad("pay must be { client = wxhw.pay client, handler = function }")
  end
  if not (conf.mp or conf.wecom or conf.pay) then bad("no endpoint: set mp, wecom or pay") end
  local calls = conf.calls
  if type(calls) ~= "table" then bad("calls must be a table (socket_path, worker)")
  else
    str(calls, "calls", "socket_path")
    if mode ~= "nginx" and (type(calls.worker) ~= "table" or #calls.worker == 0) then
      bad("calls.worker must be the worker's argv list")
    end
  end
  local dedup = conf.dedup
  if dedup ~= nil and (type(dedup) ~= "table" or type(dedup.shm) ~= "string"
      or type(dedup.entries) ~= "number" or dedup.entries < 1) then
    bad("dedup must be { shm = path, entries = N }")
  end
  local metrics = conf.metrics
  if metrics ~= nil and type(metrics) ~= "boolean" and type(metrics) ~= "table" then
    bad("metrics must be true, false or { dict =, flush = }")
  end
  local ngx_ = clock.ngx()
  if mode == "nginx" and ngx_ and ngx_.shared then
    local function dict(name, why)
      if not ngx_.shared[name] then bad(("lua_shared_dict %s is not declared (%s)"):format(name, why)) end
    end
    if dedup == nil then dict(conf.dedup_dict or "wxhw_callbacks", "de-duplication") end
    if metrics then dict(type(metrics) == "table" and metrics.dict or "wxhw_metrics", "metrics") end
  end
  if #problems > 0 then return nil, "gateway: bad configuration: " .. table.concat(problems, "; ") end
  return true
end

--- For init_by_lua: loads and validates the configuration; raises (nginx
-- does not start) when it is unusable.
function M.init(path)
  local ok, err = M.validate(load_config(path), "nginx")
  if not ok then error(err, 0) end
  return true
end

-- Metrics, the refusal log and the hooks that feed them, by configuration.
local function operations(conf, backend, write)
  local ops = { log_refusals = require("wxhw.callback.refusals").new{ write = write } }
  if conf.metrics then
    local metrics = require "wxhw.metrics"
    local reg = metrics.new{ backend = backend }
    ops.registry = reg
    ops.instruments = require("wxhw.metrics.instruments").new(reg)
    ops.on_event = ops.instruments.on_event
    ops.metrics = reg:handler()
  end
  --- a request refused before any endpoint saw it, logged and counted
  function ops.refused(reason, status)
    ops.log_refusals:note("http", reason, status)
    if ops.instruments then ops.instruments.refused("http", reason) end
  end
  --- 404 for any other path
  function ops.not_found()
    ops.refused("unknown_path", 404)
    return 404, TEXT, "not found"
  end
  return ops
end

-- The HTTP handlers by path, given the calls object or a remote client.
local function routes(conf, calls_or_remote, dedup, ops, stats)
  local callback = require "wxhw.callback"
  local r = {}
  local on_event, log_refusals = ops.on_event, ops.log_refusals
  if conf.mp then
    r["/wx/push"] = callback.mini_program{
      token = conf.mp.token, encoding_aes_key = conf.mp.encoding_aes_key, appid = conf.mp.appid,
      handlers = calls_or_remote:mp_handlers(), dedup = dedup, max_skew = conf.mp.max_skew,
      on_event = on_event, log_refusals = log_refusals,
    }
  end
  if conf.wecom then
    r["/wecom/openhw"] = callback.wecom{
      token = conf.wecom.token, encoding_aes_key = conf.wecom.encoding_aes_key, receive_id = conf.wecom.receive_id,
      handlers = conf.wecom.handlers or {}, dedup = dedup, unknown = "ack",
      on_event = on_event, log_refusals = log_refusals,
    }
  end
  if conf.pay then
    r["/pay/notify"] = callback.pay{ pay = conf.pay.client, handler = conf.pay.handler, dedup = dedup,
                                     on_event = on_event, log_refusals = log_refusals }
  end
  r["/healthz"] = function() return 200, TEXT, "ok" end
  r["/metrics"] = ops.metrics
  if stats then
    r["/stats"] = function()
      return 200, { ["Content-Type"] = "application/json" }, require("wxhw.json").encode(stats())
    end
  end
  return r
end

-- /healthz inside nginx: 503 and the reason while this worker has no
-- handlers (its configuration failed) or the call daemon's socket does not
-- accept a connection.
local function nginx_healthz(socket_path)
  return function()
    local s = clock.ngx().socket.tcp()
    s:settimeout(1000)
    local ok, err = s:connect("unix:" .. socket_path)
    if not ok then return 503, TEXT, "not ready: call daemon unreachable (" .. tostring(err) .. ")" end
    s:close()
    return 200, TEXT, "ok"
  end
end

--- Handlers for nginx: { mp =, wecom =, pay =, healthz =, metrics =, not_found = },
-- built once per worker. Calls go to the daemon over its unix socket
-- (cosockets). A configuration that fails here leaves every handler
-- answering 503 (healthz says why) and the error in nginx's log.
local nginx_cache, unready_until, unready
function M.nginx(path)
  if nginx_cache then return nginx_cache end
  if unready and clock.now() < unready_until then return unready end
  local ok, built = pcall(function()
    local conf = load_config(path)
    local valid, verr = M.validate(conf, "nginx")
    if not valid then error(verr, 0) end
    local remote = require("wxhw.call.remote").new{ socket_path = conf.calls.socket_path }
    -- De-duplication in the shm kv table (one file every worker maps, sized by
    -- entries: pushes kept for the 600 s ttl), else a lua_shared_dict by name.
    local dedup = require("wxhw.callback.ngx").dedup(conf.dedup or conf.dedup_dict or "wxhw_callbacks")
    local m = type(conf.metrics) == "table" and conf.metrics or {}
    local ops = operations(conf, conf.metrics and assert(require("wxhw.metrics").ngx_shared(m.dict or "wxhw_metrics", m.flush)))
    local r = routes(conf, remote, dedup, ops)
    return { mp = r["/wx/push"], wecom = r["/wecom/openhw"], pay = r["/pay/notify"],
             healthz = nginx_healthz(conf.calls.socket_path), metrics = r["/metrics"] or ops.not_found,
             not_found = ops.not_found, instruments = ops.instruments }
  end)
  if not ok then
    local ngx_ = clock.ngx()
    ngx_.log(ngx_.ERR, "wxhw gateway: ", tostring(built))
    local function refuse() return 503, TEXT, "not ready: gateway configuration failed (see the error log)" end
    -- tried again 5 s later (a file fixed in place), so a broken
    -- configuration logs a line per 5 s, not one per request
    unready_until = clock.now() + 5
    unready = { mp = refuse, wecom = refuse, pay = refuse, healthz = refuse, metrics = refuse, not_found = refuse }
    return unready
  end
  nginx_cache = built
  return nginx_cache
end

--- Builds the calls object, the supervisor and the relay on one wxhw.loop
-- (calls counted by `instruments`, a wxhw.metrics.instruments, when given).
function M.daemon(conf, instruments)
  local call = require "wxhw.call"
  local store = require("wxhw.kv")
  local kv = conf.calls.redis and assert(store.redis(conf.calls.redis)) or store.memory()
  local calls = call.new{ store = kv, ring_timeout = conf.calls.ring_timeout, time_limit = conf.calls.time_limit,
                          notify_device = conf.calls.notify_device, on_transition = conf.calls.on_transition }
  if instruments then instruments:calls(calls) end
  local events = require("wxhw.loop").new()
  local sup = assert(require("wxhw.call.supervisor").new{
    calls = calls, command = conf.calls.worker, socket_path = conf.calls.socket_path,
    appid = conf.mp and conf.mp.appid, log = conf.calls.worker_log, socket_mode = conf.calls.socket_mode,
    max_calls = conf.calls.max_calls, loop = events,
  })
  local relay = require("wxhw.relay").new{ calls = calls, supervisor = sup, loop = events,
                                           jitter_ms = conf.relay and conf.relay.jitter_ms }
  local relay_port
  if conf.relay then relay_port = relay:listen(conf.relay.host, conf.relay.port) end
  return { calls = calls, supervisor = sup, relay = relay, relay_port = relay_port, store = kv, loop = events }
end

-- Program mode's log: one line on stderr (conf.log = function(line) to redirect).
local function stderr_line(line) io.stderr:write(line, "\n") end

--- Program mode: returns the running pieces; `run()` loops forever.
-- Raises on a configuration M.validate refuses.
function M.program(conf, daemon_only)
  assert(M.validate(conf, "program"))
  local ops = operations(conf, nil, conf.log or stderr_line)
  local d = M.daemon(conf, ops.instruments)
  d.metrics = ops.registry
  d.instruments = ops.instruments
  local http, r
  if not daemon_only then
    local function stats()
      return { supervisor = d.supervisor.counters, relay = d.relay.counters, workers = d.supervisor:count() }
    end
    r = routes(conf, d.calls, { store = d.store }, ops, stats)
  elseif conf.metrics and conf.http then
    -- the call daemon behind nginx: the call states are counted here, so
    -- it serves its own /metrics (and /healthz) on `http`
    r = { ["/metrics"] = ops.metrics, ["/healthz"] = function() return 200, TEXT, "ok" end }
  end
  if r then
    http = assert(require("wxhw.httpserver").new{
      host = conf.http and conf.http.host, port = conf.http and conf.http.port, on_refused = ops.refused,
      loop = d.loop,
      handler = function(method, path, query, headers, body)
        local fn = r[path]
        if not fn then return ops.not_found() end
        return fn(method, query, headers, body)
      end,
    })
    d.http = http
  end
  --- one turn of the loop the HTTP server, the relay and the supervisor share
  function d.step(timeout) d.loop:step(timeout or 0.005) end
  --- runs them for `seconds`, or for ever
  function d.run(seconds) d.loop:run{ seconds = seconds } end
  return d
end

--- The command line (examples/gateway.lua): CONFIG [--daemon | --check].
-- Returns an exit status; runs for ever otherwise.
function M.main(args)
  local conf = load_config(args[1])
  if args[2] == "--check" then -- as init_by_lua would (nginx -t does not run it)
    local ok, err = M.validate(conf, "nginx")
    io.stdout:write(ok and "gateway: configuration ok\n" or err .. "\n")
    return ok and 0 or 1
  end
  local d = M.program(conf, args[2] == "--daemon")
  io.stdout:write(("WXHW_GATEWAY http=%s relay=%s calls=%s\n"):format(
    d.http and d.http.port or "-", d.relay_port or "-", conf.calls.socket_path))
  io.stdout:flush()
  d.run()
  return 0
end

return M

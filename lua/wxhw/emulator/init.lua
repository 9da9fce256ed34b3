--- The wxhw emulator: a real HTTP server on loopback that behaves like the
-- WeChat (api.weixin.qq.com), WeCom (qyapi.weixin.qq.com) and WeChat Pay
-- (api.mch.weixin.qq.com) APIs wxhw uses, with its own clock, counters and
-- fault injection under /__emulator/. Lua 5.4 only. See docs/emulator.md.
--
--   local emu = require("wxhw.emulator").start{ port = 0, seed = 1 }
--   print(emu.base_url); emu:run()      -- or emu:step() from your own loop
local server = require "wxhw.emulator.server"
local util = require "wxhw.emulator.util"
local contract = require "wxhw.emulator.contract"
local validate = require "wxhw.emulator.validate"
local socket = require "socket"

local M = {}
local Emu = {}
Emu.__index = Emu

M.ERRMSG = {
  [-1] = "system error", [0] = "ok",
  [40001] = "invalid credential, access_token is invalid or not latest",
  [40002] = "invalid grant_type", [40013] = "invalid appid", [40014] = "invalid access_token",
  [40125] = "invalid appsecret", [41001] = "access_token missing", [41002] = "appid missing",
  [41004] = "appsecret missing", [42001] = "access_token expired", [43001] = "require GET method",
  [43002] = "require POST method",
  [44002] = "empty post data", [45002] = "content size out of limit",
  [45009] = "reach max api daily quota limit",
  [45011] = "api minute-quota reach limit  mustslower  retry next minute",
  [45033] = "api concurrent out of limit", [47001] = "data format error",
  [48001] = "api unauthorized", [40101] = "invalid parameter", [48012] = "invalid push token",
  [40091] = "secret is invalid", [50093] = "hostappid error",
}

--- The fixed test credentials (documented in docs/emulator.md). More apps can
-- be registered at runtime with POST /__emulator/apps.
function M.default_credentials()
  return {
    mp = { appid = "wxa000000000000001", secret = "a0000000000000000000000000000001",
           model_id = "emuModelId000001", model_type = "门禁机",
           other_model_id = "emuModelId000002", other_model_type = "摄像头",
           msg_token = "emulatortoken",
           encoding_aes_key = "EmuLatorEncodingAesKey0123456789abcdefghijk",
           original_id = "gh_e000000000e1" },
    host_app = { appid = "wxb000000000000002", secret = "b0000000000000000000000000000002" },
    wecom = { corpid = "wwc000000000000001",
              corpsecret = "EmulatorWeComAppSecret000000000000000000001", agentid = 1000001 },
    openhw = { service_corpid = "wwc000000000000001", model_id = "emu_openhw_model_1",
               model_secret = "EmulatorOpenhwModelSecret0000000000000001",
               auth_corpid = "wwa000000000000009",
               callback_token = "emulatorhwtoken",
               encoding_aes_key = "EmuLatorOpenhwAesKey0123456789abcdefghijklm" },
    pay = { mchid = "1900000001", apiv3_key = "EmulatorApiV3Key0123456789abcdef",
            public_key_id = "PUB_KEY_ID_0119000000012026112400000000000001" },
  }
end

function Emu:now() return socket.gettime() + self.state.clock_offset end

function Emu:errmsg(code) return M.ERRMSG[code] or "error" end

--- A WeChat-style JSON answer.
function Emu:json(t, status, headers)
  return { status = status or 200, body = util.json(t), headers = headers }
end

function Emu:err(code, msg)
  return { status = 200, body = util.json({ errcode = code, errmsg = msg or self:errmsg(code) }) }
end

function Emu:count(kind, key)
  local c = self.counters[kind]
  if not c then c = {}; self.counters[kind] = c end
  c[key] = (c[key] or 0) + 1
end

--- Mark state dirty; it is written to --state at most once a second.
function Emu:touch() self.dirty = true end

function Emu:route(path, fn) self.routes[path] = fn end
function Emu:route_prefix(prefix, fn) self.prefix_routes[#self.prefix_routes + 1] = { prefix, fn } end

local function is_loopback(peer)
  return peer == "127.0.0.1" or peer == "::1" or peer == "::ffff:127.0.0.1"
    or (peer and peer:match("^127%.")) ~= nil
end

-- Faults: { path, method, skip, count, errcode, errmsg, http_status, body,
-- retry_after, delay_ms, reset, truncate, bad_signature, signtest }.
local function take_fault(self, req, key)
  for i, f in ipairs(self.faults) do
    local match = (f.path == req.path or f.path == key or f.path == "*"
      or (f.path:sub(-1) == "*" and req.path:sub(1, #f.path - 1) == f.path:sub(1, -2)))
      and (not f.method or f.method == req.method)
    if match then
      if f.skip and f.skip > 0 then f.skip = f.skip - 1
      else
        f.hits = (f.hits or 0) + 1
        if f.count then
          f.count = f.count - 1
          if f.count <= 0 then table.remove(self.faults, i) end
        end
        return f
      end
    end
  end
end

local function apply_fault(self, req, f, route_fn)
  local res
  local pay = req.path:sub(1, 4) == "/v3/"
  if f.errcode then
    if f.errcode == 40001 then self.tokens:invalidate_request_token(req) end
    res = self:err(f.errcode, f.errmsg)
  elseif f.http_status then
    local body = f.body
    if not body then
      if pay then
        local code = f.http_status == 429 and "FREQUENCY_LIMITED" or f.http_status >= 500 and "SYSTEM_ERROR" or "PARAM_ERROR"
        body = util.json({ code = f.code or code, message = f.errmsg or "injected by the emulator" })
      else
        body = util.json({ errcode = -1, errmsg = f.errmsg or "injected http status" })
      end
    end
    res = { status = f.http_status, body = body, headers = {} }
    if f.retry_after then res.headers["Retry-After"] = tostring(f.retry_after) end
    if pay and self.pay then res = self.pay:sign_response(req, res) end
  else
    res = route_fn(self, req)
  end
  if f.delay_ms then res.delay = f.delay_ms / 1000 end
  if f.reset then res.reset = true end
  if f.truncate then res.truncate = true end
  return res
end

-- A route behind its contract check (wxhw.emulator.validate).
local function serve(self, req)
  return validate.check(self, req, req.entry) or req.route(self, req)
end

function Emu:handle(req)
  req.q = util.parse_query(req.query)
  if req.path:sub(1, 12) == "/__emulator/" then
    if not is_loopback(req.peer) then return self:json({ error = "loopback only" }, 403) end
    return self.control(self, req)
  end
  local fn, key = self.routes[req.path], req.path
  if not fn then
    for _, pr in ipairs(self.prefix_routes) do
      if req.path:sub(1, #pr[1]) == pr[1] then fn, key = pr[2], pr[1] .. "*"; break end
    end
  end
  self:count("endpoints", key)
  self.requests_total = self.requests_total + 1
  if not fn then
    if req.path:sub(1, 4) == "/v3/" then
      return self:json({ code = "NOT_FOUND", message = "no such API in the emulator" }, 404)
    end
    return self:json({ errcode = 404, errmsg = "not found: " .. req.path }, 404)
  end
  -- Every route answers within its contract: the validator runs first.
  req.entry, req.route = contract.by_key[key], fn
  if not req.entry then
    return self:json({ errcode = -1, errmsg = "emulator bug: no contract entry for " .. key }, 500)
  end
  local res
  if #self.faults > 0 then
    local f = take_fault(self, req, key)
    if f then
      req.fault = f
      self:count("faults", key)
      res = apply_fault(self, req, f, serve)
    end
  end
  res = res or serve(self, req)
  -- a short request log for debugging specs: GET /__emulator/requests
  -- (json: the decoded body, shown as its shape of JSON types)
  local log = self.request_log
  log[self.request_log_pos] = { method = req.method, path = req.path, status = res.status,
    fault = req.fault and req.fault.id or nil, time = self:now(), contract = req.contract, json = req.json }
  self.request_log_pos = self.request_log_pos % 200 + 1
  return res
end

--- Parse a POST JSON body with WeChat's errcodes (43002, 44002, 47001) into
-- req.json (the validator's first step for a POST entry).
function Emu:body_json(req)
  if req.method ~= "POST" then return nil, self:err(43002) end
  if req.body == "" then return nil, self:err(44002) end
  local v = util.decode(req.body)
  if type(v) ~= "table" then return nil, self:err(47001, "data format error hint: body is not a JSON object") end
  req.json = v
  return v
end

------------------------------------------------------------------ state
-- sn tickets live 5 minutes and can number hundreds of thousands under load:
-- they are not worth rewriting the file for.
local PERSIST = { "clock_offset", "apps", "tokens", "current", "products",
  "groups", "group_of", "push_tokens", "openhw", "force_log", "seq" }

function Emu:save()
  if not self.state_file then self.dirty = false; return true end
  local out = {}
  for _, k in ipairs(PERSIST) do out[k] = self.state[k] end
  local tmp = self.state_file .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then return nil, err end
  f:write(util.json(out)); f:close()
  os.rename(tmp, self.state_file)
  self.dirty = false
  return true
end

local function load_state(file)
  local f = io.open(file, "r")
  if not f then return nil end
  local s = f:read("a"); f:close()
  local v = util.decode(s)
  -- Never overwrite a file we cannot read: it may be someone's data.
  if type(v) ~= "table" or type(v.tokens) ~= "table" then
    error("state file " .. file .. " is not an emulator state (JSON object); move it away or pick another --state", 0)
  end
  return v
end

local function fresh_state(creds)
  return {
    clock_offset = 0,
    apps = {
      [creds.mp.appid] = { secret = creds.mp.secret, kind = "mp" },
      [creds.host_app.appid] = { secret = creds.host_app.secret, kind = "app" },
    },
    corps = {},
    tokens = {}, current = { token = {}, stable = {}, wecom = {} },
    products = {}, groups = {}, group_of = {}, snticket = {},
    push_tokens = {}, openhw = {}, force_log = {}, seq = 0,
  }
end

function Emu:reset()
  local keep_apps = self.state and self.state.apps
  self.state = fresh_state(self.credentials)
  if keep_apps then self.state.apps = keep_apps end
  self.counters = { endpoints = {}, token_fetches = {}, faults = {} }
  self.faults = {}
  self.requests_total = 0
  self.request_log, self.request_log_pos = {}, 1
  for _, m in ipairs(self.modules) do if m.reset then m:reset() end end
  self:touch()
end

function Emu:next_seq()
  self.state.seq = self.state.seq + 1
  return self.state.seq
end

------------------------------------------------------------------ start
--- Start an emulator. opts: host, port (0 = any free port), state (file),
-- seed, iot_devices, keys_dir, quiet. Returns the emulator (not yet running).
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({
    routes = {}, prefix_routes = {}, control_routes = {}, faults = {}, modules = {},
    seed = tonumber(opts.seed) or 1, state_file = opts.state, opts = opts,
    credentials = M.default_credentials(), requests_total = 0, request_log = {}, request_log_pos = 1,
  }, Emu)
  self.rng = util.rng(self.seed)
  self.state = (opts.state and load_state(opts.state)) or fresh_state(self.credentials)
  for k, v in pairs(fresh_state(self.credentials)) do
    if self.state[k] == nil then self.state[k] = v end
  end
  self.counters = { endpoints = {}, token_fetches = {}, faults = {} }
  self.srv = server.new{ host = opts.host or "127.0.0.1", port = opts.port or 0,
    handler = function(req) return self:handle(req) end }
  self.port = self.srv.port
  local h = self.srv.host
  self.base_url = "http://" .. (h:find(":", 1, true) and "[" .. h .. "]" or h) .. ":" .. self.port
  self.control = require "wxhw.emulator.control"
  for _, name in ipairs{ "tokens", "mp", "wmpf", "wecom", "pay", "callbacks" } do
    local ok, mod = pcall(require, "wxhw.emulator." .. name)
    if ok then
      local inst = mod.install(self)
      self[name] = inst
      self.modules[#self.modules + 1] = inst
    elseif not tostring(mod):find("module 'wxhw.emulator." .. name .. "' not found", 1, true) then
      error(mod, 0)
    end
  end
  self.srv:after(1, function() self:tick() end)
  return self
end

-- Once a second: persist state, let modules run timed work (callbacks).
function Emu:tick()
  if self.dirty then self:save() end
  self.srv:sweep(self.opts.idle_timeout or 300)
  for _, m in ipairs(self.modules) do if m.tick then m:tick() end end
  self.srv:after(1, function() self:tick() end)
end

function Emu:step(timeout) self.srv:step(timeout) end

function Emu:run()
  self.running = true
  while self.running do self.srv:step(0.5) end
  self:save()
  self.srv:close()
end

function Emu:stop() self.running = false end

function Emu:close()
  self:save()
  self.srv:close()
end

return M

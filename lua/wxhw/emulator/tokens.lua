--- Access tokens: /cgi-bin/token (5-minute overlap after a new fetch),
-- /cgi-bin/stable_token (normal mode keeps the token until 5 minutes before
-- expiry; force_refresh 20/day, and one less than 30 s after the last forced
-- refresh does not refresh), WeCom /cgi-bin/gettoken, and the
-- token registry every other module checks requests against.
local M = {}
local T = {}
T.__index = T

local LIFETIME = 7200
local OVERLAP = 300

local china_day = require("wxhw.emulator.util").china_day

--- Issue a token of `kind` for `owner` (appid, corpid:secret, model id ...).
function T:issue(kind, owner, ttl, extra)
  local emu = self.emu
  local now = emu:now()
  local prefix = ({ mp = "MP", app = "AP", wecom = "WC", model = "MD", device = "DV" })[kind] or "TK"
  local value = prefix .. emu:next_seq() .. "_" .. emu.rng:token(136)
  local rec = { kind = kind, owner = owner, issued = now, expires = now + (ttl or LIFETIME) }
  rec.valid_until = rec.expires
  if extra then for k, v in pairs(extra) do rec[k] = v end end
  emu.state.tokens[value] = rec
  emu:touch()
  return value, rec
end

--- Check a token for an API. kinds: set of accepted kinds ({mp=true}).
-- Returns rec or nil, errcode.
function T:check(value, kinds)
  if value == nil or value == "" then return nil, 41001 end
  local rec = self.emu.state.tokens[value]
  if not rec then return nil, 40001 end
  if kinds and not kinds[rec.kind] then return nil, 40001 end
  local now = self.emu:now()
  if now >= rec.expires then return nil, 42001 end
  if now >= rec.valid_until then return nil, 40001 end
  return rec
end

function T:invalidate(value)
  local rec = self.emu.state.tokens[value]
  if rec then
    rec.valid_until = math.min(rec.valid_until, self.emu:now())
    self.emu:touch()
    return true
  end
  return false
end

function T:invalidate_request_token(req)
  for _, p in ipairs{ "access_token", "model_access_token", "device_access_token" } do
    if req.q[p] then self:invalidate(req.q[p]) end
  end
end

--- Invalidate every live token of an owner (appid, corpid ...).
function T:invalidate_owner(owner)
  local n = 0
  for v, rec in pairs(self.emu.state.tokens) do
    if rec.owner == owner and self:check(v) then self:invalidate(v); n = n + 1 end
  end
  return n
end

-- Fixed windows of `span` seconds; a day's window is WeChat's day.
local function window_count(self, key, span, limit)
  local now = self.emu:now()
  local slot = span == 86400 and china_day(now) or math.floor(now / span)
  local w = self.windows[key]
  if not w or w.slot ~= slot then w = { slot = slot, n = 0 }; self.windows[key] = w end
  w.n = w.n + 1
  return w.n <= limit
end

---------------------------------------------------------------- /cgi-bin/token
local function get_token(emu, req)
  local self = emu.tokens
  local q = req.q -- grant_type, appid, secret checked by the contract (contract/tokens.lua)
  local app = emu.state.apps[q.appid]
  if not app then return emu:err(40013) end
  if q.secret ~= app.secret then return emu:err(40125) end
  local day = china_day(emu:now())
  local used = self.daily[q.appid]
  if not used or used.day ~= day then used = { day = day, n = 0 }; self.daily[q.appid] = used end
  if used.n >= self.token_daily_limit then return emu:err(45009) end
  used.n = used.n + 1
  emu:count("token_fetches", "token:" .. q.appid)
  local cur = emu.state.current.token[q.appid] or {}
  local now = emu:now()
  -- Only the previous token survives a new fetch, and only for 5 minutes.
  if cur.prev then self:invalidate(cur.prev) end
  if cur.cur then
    local rec = emu.state.tokens[cur.cur]
    if rec then rec.valid_until = math.min(rec.valid_until, now + OVERLAP) end
  end
  local value = self:issue(app.kind or "mp", q.appid, LIFETIME, { via = "token" })
  emu.state.current.token[q.appid] = { cur = value, prev = cur.cur }
  return emu:json({ access_token = value, expires_in = LIFETIME })
end

---------------------------------------------------------------- stable_token
local function stable_token(emu, req)
  local self = emu.tokens
  local b = req.json -- method, body and field types checked by the contract
  local app = emu.state.apps[b.appid]
  if not app then return emu:err(40013) end
  if b.secret ~= app.secret then return emu:err(40125) end
  if not window_count(self, "stable_min:" .. b.appid, 60, 10000) then return emu:err(45011) end
  if not window_count(self, "stable_day:" .. b.appid, 86400, 500000) then return emu:err(45009) end
  local now = emu:now()
  local cur = emu.state.current.stable[b.appid]
  local rec = cur and emu.state.tokens[cur]
  if b.force_refresh then
    local log = emu.state.force_log[b.appid] or {}
    local day, today, last = china_day(now), 0, nil
    for _, t in ipairs(log) do
      if china_day(t) == day then today = today + 1 end
      last = t
    end
    if today >= 20 then return emu:err(45009, "reach max api daily quota limit (force_refresh 20/day)") end
    if last and now - last < 30 and rec and self:check(cur) then
      -- "连续使用该模式时,请保证调用时间隔至少为 30s,否则不会刷新" (getStableAccessToken):
      -- no error is documented; the current token comes back unchanged and
      -- the call is not counted as one of the day's 20 (chosen)
      emu:count("token_fetches", "stable_force_ignored:" .. b.appid)
      return emu:json({ access_token = cur, expires_in = math.floor(rec.expires - now + 0.5) })
    end
    local keep = {}
    for _, t in ipairs(log) do if china_day(t) == day then keep[#keep + 1] = t end end
    keep[#keep + 1] = now
    emu.state.force_log[b.appid] = keep
    if cur then self:invalidate(cur) end
  elseif rec and self:check(cur) and now < rec.expires - OVERLAP then
    emu:count("token_fetches", "stable_cached:" .. b.appid)
    return emu:json({ access_token = cur, expires_in = math.floor(rec.expires - now + 0.5) })
  end
  -- Normal mode in the last 5 minutes rotates; the old token lives to its expiry.
  emu:count("token_fetches", "stable:" .. b.appid)
  local value = self:issue(app.kind or "mp", b.appid, LIFETIME, { via = "stable_token" })
  emu.state.current.stable[b.appid] = value
  return emu:json({ access_token = value, expires_in = LIFETIME })
end

---------------------------------------------------------------- WeCom gettoken
local function wecom_gettoken(emu, req)
  local self = emu.tokens
  local q = req.q -- corpid, corpsecret present (contract)
  local corp = self.corps[q.corpid]
  if not corp then return emu:err(40013, "invalid corpid") end
  if not corp[q.corpsecret] then return emu:err(40001, "invalid credential (corpsecret)") end
  if not window_count(self, "gettoken:" .. q.corpid .. q.corpsecret, 60, self.gettoken_per_minute) then
    return emu:err(45009, "api freq out of limit")
  end
  emu:count("token_fetches", "gettoken:" .. q.corpid)
  local owner = q.corpid .. ":" .. q.corpsecret:sub(1, 8)
  local now = emu:now()
  local cur = emu.state.current.wecom[owner]
  -- Within validity the same token comes back with its remaining lifetime.
  if cur and self:check(cur) then
    local rec = emu.state.tokens[cur]
    return emu:json({ errcode = 0, errmsg = "ok", access_token = cur, expires_in = math.floor(rec.expires - now + 0.5) })
  end
  local value = self:issue("wecom", owner, LIFETIME, { corpid = q.corpid })
  emu.state.current.wecom[owner] = value
  return emu:json({ errcode = 0, errmsg = "ok", access_token = value, expires_in = LIFETIME })
end

---------------------------------------------------------------- clear_quota
-- POST /cgi-bin/clear_quota {"appid"}: resets the emulator's daily count of
-- /cgi-bin/token fetches for that app (the real one also resets API quotas).
local function clear_quota(emu, req)
  local rec, b = req.auth, req.json
  if b.appid ~= rec.owner then return emu:err(40013, "invalid appid hint: appid must be the token's own") end
  emu.tokens.daily[b.appid] = nil
  return emu:json({ errcode = 0, errmsg = "ok" })
end

function T:reset()
  self.daily, self.windows = {}, {}
end

-- Drop records that expired more than a day ago so long runs stay small.
function T:tick()
  self.ticks = (self.ticks or 0) + 1
  if self.ticks % 60 ~= 0 then return end
  local now = self.emu:now()
  for v, rec in pairs(self.emu.state.tokens) do
    if rec.expires < now - 86400 then self.emu.state.tokens[v] = nil end
  end
end

function M.install(emu)
  local c = emu.credentials
  local self = setmetatable({ emu = emu, daily = {}, windows = {}, token_daily_limit = 10000,
    gettoken_per_minute = 600,
    corps = { [c.wecom.corpid] = { [c.wecom.corpsecret] = { agentid = c.wecom.agentid } } } }, T)
  emu:route("/cgi-bin/token", get_token)
  emu:route("/cgi-bin/stable_token", stable_token)
  emu:route("/cgi-bin/gettoken", wecom_gettoken)
  emu:route("/cgi-bin/clear_quota", clear_quota)
  emu.control_routes["POST /__emulator/tokens/limits"] = function(_, _, b)
    if math.tointeger(b.token_daily) then self.token_daily_limit = b.token_daily end
    if math.tointeger(b.gettoken_per_minute) then self.gettoken_per_minute = b.gettoken_per_minute end
    return { token_daily = self.token_daily_limit, gettoken_per_minute = self.gettoken_per_minute }
  end
  return self
end

return M

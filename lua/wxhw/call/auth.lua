--- Authorisation registry for device → phone calls
-- (developers.weixin.qq.com/miniprogram/dev/framework/device/voip/auth.html).
-- WeChat keeps the real authorisation (wx.requestDeviceVoIP) and offers no
-- server API to query it, so the docs tell the backend to record (sn, openid)
-- after a successful requestDeviceVoIP. This is that record:
--
--   local reg = auth.new{ store = kv, sn_ticket = function(sn, model_id) ... end }
--   reg:sn_ticket(sn, model_id)               --> ticket for wx.requestDeviceVoIP
--   reg:record(sn, model_id, openid, status)  -- 1 authorised, 0 revoked/refused
--   reg:may_call(sn, model_id, openid)        --> true | false
--   reg:list(sn, model_id)                    --> { {openid=, status=, at=}, ... }
--
-- Records live in a kv store (wxhw.kv: memory, redis, ngx.shared, shm) as
-- "auth:<model_id>:<sn>:<openid>" = "<status> <unix time>".
local errors = require "wxhw.errors"

local M = {}
M.__index = M

local function check_ids(sn, model_id, openid)
  if type(sn) ~= "string" or sn == "" or sn:find("[:%s]") then error("auth: sn must be a non-empty string without ':' or spaces", 3) end
  if type(model_id) ~= "string" or model_id == "" or model_id:find("[:%s]") then error("auth: model_id must be a non-empty string", 3) end
  if openid ~= nil and (type(openid) ~= "string" or openid == "" or openid:find("%s")) then
    error("auth: openid must be a non-empty string", 3)
  end
end

--- opts: store (kv, default memory), sn_ticket (function(sn, model_id) -->
-- ticket | nil, err: the Mini Program getsnticket call), clock (os.time).
function M.new(opts)
  opts = opts or {}
  return setmetatable({ store = opts.store or require("wxhw.kv").memory(),
                        fetch_ticket = opts.sn_ticket, clock = opts.clock or os.time }, M)
end

local function key(model_id, sn, openid) return "auth:" .. model_id .. ":" .. sn .. ":" .. (openid or "") end

--- Issues an snTicket (getsnticket, api_getsnticket) for wx.requestDeviceVoIP.
function M:sn_ticket(sn, model_id)
  check_ids(sn, model_id)
  if not self.fetch_ticket then error("auth: no sn_ticket function configured", 2) end
  local t, err = self.fetch_ticket(sn, model_id)
  if not t then return nil, err or errors.new("wx", "getsnticket failed") end
  return t
end

function M:record(sn, model_id, openid, status)
  check_ids(sn, model_id, openid)
  if status ~= 0 and status ~= 1 then error("auth:record: status must be 0 or 1", 2) end
  return self.store:set(key(model_id, sn, openid), status .. " " .. math.floor(self.clock()))
end

function M:revoke(sn, model_id, openid) return self:record(sn, model_id, openid, 0) end

function M:may_call(sn, model_id, openid)
  check_ids(sn, model_id, openid)
  local v, err = self.store:get(key(model_id, sn, openid))
  if err then return nil, err end
  return v ~= nil and v:sub(1, 1) == "1"
end

function M:list(sn, model_id)
  check_ids(sn, model_id)
  local prefix = key(model_id, sn)
  local keys, err = self.store:keys(prefix)
  if not keys then return nil, err end
  local out = {}
  for _, k in ipairs(keys) do
    local v = self.store:get(k)
    if v then
      local st, at = v:match("^(%d) (%d+)$")
      out[#out + 1] = { openid = k:sub(#prefix + 1), status = tonumber(st), at = tonumber(at) }
    end
  end
  return out
end

function M:__tostring() return "wxhw call authorisation registry (" .. tostring(self.store) .. ")" end

return M

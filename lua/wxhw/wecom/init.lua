--- WeCom smart-hardware cloud access (openhw, https://developer.work.weixin.qq.com/document/path/91342): model token,
-- device secret and device token through the token manager, SN registration
-- and deletion, device details and status, the member list and lookup,
-- attendance / access / temperature reports, command results and the
-- callbacks (model_ticket, bind, unbind, verify_device, device commands).
-- See docs/wecom.md.
--
--   local wc = wxhw.wecom.new{ client = c, model_id =, model_secret =,
--                              model_ticket = "..." | function() return latest end }
--   local qr = wc:register_sn("SN0001")
--   local d = wc:device{ device_sn = "SN0001", device_secret = "..." }
--   for user, err in d:members() do ... end
--   local res = d:report_checkin{ { open_userid =, user_type = 0, timestamp = } ... }
local errors = require "wxhw.errors"
local client_mod = require "wxhw.client"

local M = {}

M.SN_MAX = 128
M.REPORT_CHUNK = 100
M.MEMBERS_LIMIT = 200

--- WeCom SN rules: 1-128 characters of [0-9A-Za-z], unique case-insensitively.
function M.sn_error(sn)
  if type(sn) ~= "string" or sn == "" then return "device_sn is required" end
  if #sn > M.SN_MAX then return ("device_sn is %d characters (at most 128)"):format(#sn) end
  local bad = sn:find("[^%w]")
  if bad then return ('device_sn has an illegal character "%s" at %d (WeCom allows only 0-9 A-Z a-z)'):format(errors.char_at(sn, bad), bad) end
end

-- openhw calls carry their own token (model_access_token / device_access_token)
-- instead of access_token: a client of their own shares the user's transport,
-- base URLs and limiter, never its token_provider or hooks.
local function openhw_client(c)
  local o = {}
  if c then o.transport, o.base_urls, o.limiter = c.transport, c.base_urls, c.limiter end
  return assert(client_mod.new(o))
end

-- POST path?<param>=<token from mgr>; the client refreshes the token once on a
-- token errcode (wxhw.client ERRCODES / PRODUCT_ERRCODES.wecom).
local function call(cl, mgr, param, path, body)
  return cl:call{ product = "wecom", method = "POST", path = path, json = body,
                  token = { provider = mgr, param = param } }
end

local WC = {}
WC.__index = WC

--- opts: client (a wxhw.client, used for its transport and base URLs),
-- model_token (a token manager) or model_id + model_secret + model_ticket
-- (string or function returning the latest), store (token store, default shm).
function M.new(o)
  if type(o) ~= "table" then error("wxhw.wecom.new: options table expected", 2) end
  local self = setmetatable({ client = openhw_client(o.client), store = o.store, store_options = o.store_options,
    latest_ticket = type(o.model_ticket) == "string" and o.model_ticket or nil }, WC)
  self.model_mgr = o.model_token
  if not self.model_mgr then
    if type(o.model_id) ~= "string" or type(o.model_secret) ~= "string" then
      error("wxhw.wecom.new: model_token (manager) or model_id + model_secret required", 2)
    end
    local ticket = o.model_ticket
    local token = require "wxhw.token"
    self.model_mgr = assert(token.new{ source = "model_token", model_id = o.model_id, model_secret = o.model_secret,
      model_ticket = function()
        if type(ticket) == "function" then return ticket() end
        return self.latest_ticket
      end,
      client = self.client, store = o.store or "memory", store_options = o.store_options })
  end
  return self
end

function WC:__tostring() return "wxhw.wecom (openhw cloud access)" end

--- The latest model_ticket (the model_ticket callback calls this).
function WC:set_model_ticket(t) self.latest_ticket = t end

function WC:model_token() return self.model_mgr:token() end

function WC:_model(path, body) return call(self.client, self.model_mgr, "model_access_token", path, body) end

--- register_sn → qr_code (https://open.work.weixin.qq.com/connect/hardware?hw_code=...).
function WC:register_sn(sn)
  local msg = M.sn_error(sn)
  if msg then return errors.fail("input", msg, { device_sn = type(sn) == "string" and sn or nil }) end
  local res, err = self:_model("/cgi-bin/openhw/model/register_sn", { device_sn = sn })
  if not res then return nil, err end
  return res.qr_code, res
end

--- unregister_sn (doc 95981): deletes an SN that is not bound → true.
function WC:unregister_sn(sn)
  local msg = M.sn_error(sn)
  if msg then return errors.fail("input", msg, { device_sn = type(sn) == "string" and sn or nil }) end
  local res, err = self:_model("/cgi-bin/openhw/model/unregister_sn", { device_sn = sn })
  if not res then return nil, err end
  return true
end

--- get_device_detail → detail with `corp_info` set from auth_corp_info or bind_corpinfo.
function WC:device_detail(sn)
  local msg = M.sn_error(sn)
  if msg then return errors.fail("input", msg) end
  local res, err = self:_model("/cgi-bin/openhw/device/get_device_detail", { device_sn = sn })
  if not res then return nil, err end
  local d = type(res.device_detail) == "table" and res.device_detail or res
  local corp = d.auth_corp_info
  if type(corp) ~= "table" or next(corp) == nil then corp = d.bind_corpinfo end
  if type(corp) ~= "table" or next(corp) == nil then corp = nil end
  d.corp_info = corp
  d.bound = tonumber(d.bind_status) == 1
  return d
end

--- get_device_secret with the one-time auth_code from the bind callback.
function WC:device_secret(auth_code)
  if type(auth_code) ~= "string" or #auth_code < 64 or #auth_code > 512 then
    return errors.fail("input", "auth_code must be 64-512 bytes (from the bind callback, valid 10 minutes, one use)")
  end
  local res, err = self:_model("/cgi-bin/openhw/get_device_secret", { auth_code = auth_code })
  if not res then return nil, err end
  return res.device_secret, res
end

--- A device handle: device-token calls for one SN. o: device_sn, device_secret.
function WC:device(o)
  if type(o) ~= "table" or type(o.device_sn) ~= "string" or type(o.device_secret) ~= "string" then
    error("wxhw.wecom:device: { device_sn =, device_secret = } required", 2)
  end
  local token = require "wxhw.token"
  local mgr = assert(token.new{ source = "device_token", device_sn = o.device_sn, device_secret = o.device_secret,
    model_token = self.model_mgr, client = self.client, store = self.store or "memory",
    store_options = self.store_options })
  return require("wxhw.wecom.device").new{ call = function(path, body)
    return call(self.client, mgr, "device_access_token", path, body)
  end, device_sn = o.device_sn, token = mgr, report_chunk = M.REPORT_CHUNK }
end

--- A callback handler for model_ticket / bind / unbind / verify_device and the
-- device commands (wxhw.callback.wecom): keeps the latest model_ticket,
-- answers bind within its 3 s deadline, the others within 1 s.
-- o: token, encoding_aes_key, receive_id, on_bind(event, base_info) → nil
-- (accept) | errcode, errmsg (reject: 1 offline, 2 bound, 3 local data,
-- 4 wrong code, 5 not unbound), on_unbind(event, base_info), on_model_ticket,
-- on_verify_device(device_sn_md5, base_info) → modelid | nil,
-- on_command(command, base_info) → nil (accept) | errcode, errmsg.
function WC:callback(o)
  return require("wxhw.wecom.callback").handler(self, o)
end

return M

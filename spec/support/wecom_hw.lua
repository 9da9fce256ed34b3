--- Helpers for the WeCom hardware specs (emulator control): bind a device
-- without asking the vendor, and read an operation's state.
local M = {}

--- Registers and binds `sn` with the openhw URL switched off for the bind,
-- then restored to `url`; returns the device secret.
function M.bind_quietly(e, wc, sn, url)
  assert(wc:register_sn(sn))
  e.control("/__emulator/callbacks", { openhw_url = "" })
  local b = e.control("/__emulator/openhw/bind", { device_sn = sn })
  e.control("/__emulator/callbacks", { openhw_url = url })
  return assert(wc:device_secret(b.auth_code))
end

--- A wxhw.wecom on the emulator `e`: its test model, the current model_ticket.
function M.client(e)
  local oh = e.credentials.openhw
  return require("wxhw.wecom").new{
    client = assert(require("wxhw.client").new{ base_urls = { wecom = e.base_url }, retry = { attempts = 1 } }),
    model_id = oh.model_id, model_secret = oh.model_secret,
    model_ticket = function() return e.control("/__emulator/openhw/model_ticket").model_ticket end }
end

--- `sn` bound quietly (no vendor URL afterwards): the wxhw device, its raw
-- device_access_token (for requests the client would not send) and the
-- first member it serves.
function M.bound(e, wc, sn)
  local oh = e.credentials.openhw
  local secret = M.bind_quietly(e, wc, sn, "")
  local dev = wc:device{ device_sn = sn, device_secret = secret }
  local member = dev:members{ limit = 10 }()
  local mt = e.json("POST", "/cgi-bin/openhw/get_model_token", { model_id = oh.model_id,
    model_secret = oh.model_secret, model_ticket = e.control("/__emulator/openhw/model_ticket").model_ticket })
  local tok = e.json("POST", "/cgi-bin/openhw/get_device_token?model_access_token=" .. mt.model_access_token,
    { device_sn = sn, device_secret = secret }).device_access_token
  return dev, tok, member
end

--- The emulator's record of a device command operation (state, errcode, ...).
function M.operation(e, oper_id)
  for _, op in ipairs(e.control("/__emulator/openhw/devices").operations) do
    if op.oper_id == oper_id then return op end
  end
end

return M

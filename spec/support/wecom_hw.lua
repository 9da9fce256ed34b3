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

--- The emulator's record of a device command operation (state, errcode, ...).
function M.operation(e, oper_id)
  for _, op in ipairs(e.control("/__emulator/openhw/devices").operations) do
    if op.oper_id == oper_id then return op end
  end
end

return M

--- openhw callbacks (wechat-api.md §4.4) on top of wxhw.callback.wecom:
-- model_ticket (kept for the model token, reply within 1 s), bind (accept or
-- reject with a code within 3 s), unbind (1 s). Handlers must be quick: do
-- slow work (get_device_secret) after replying.
local callback = require "wxhw.callback"

local M = {}

function M.handler(wc, o)
  if type(o) ~= "table" then error("wecom:callback: options table expected", 3) end
  local function base(msg) return type(msg.base_info) == "table" and msg.base_info or {} end
  local function event(msg) return type(msg.event) == "table" and msg.event or {} end
  return callback.wecom{
    token = o.token, encoding_aes_key = o.encoding_aes_key, receive_id = o.receive_id,
    dedup = o.dedup, on_event = o.on_event, clock = o.clock, max_skew = o.max_skew,
    handlers = {
      model_ticket = function(msg)
        local t = event(msg).model_ticket
        if type(t) == "string" and t ~= "" then wc:set_model_ticket(t) end
        if o.on_model_ticket then o.on_model_ticket(t, base(msg)) end
        return true
      end,
      bind = function(msg)
        if not o.on_bind then return true end
        local code, emsg = o.on_bind(event(msg), base(msg))
        if code == nil or code == 0 then return true end
        return { errcode = code, errmsg = emsg or "rejected" }
      end,
      unbind = function(msg)
        if o.on_unbind then o.on_unbind(event(msg), base(msg)) end
        return true
      end,
    },
  }
end

return M

--- openhw callbacks (developer.work.weixin.qq.com/document/path/96053, 95987,
-- 95988, 96130) on top of wxhw.callback.wecom:
-- model_ticket (kept for the model token, reply within 1 s), bind (accept or
-- reject with a code within 3 s), unbind (1 s), verify_device (is this SN
-- ours? 1 s, encrypted answer) and the device commands (msg_type "command",
-- 1 s each). Handlers must be quick: do slow work (get_device_secret,
-- opening the door, the upgrade) after replying, then report the result.
local callback = require "wxhw.callback"

local M = {}

-- The device commands WeCom pushes (docs 97079, 96011, 96009, 96010); their
-- results go back through the device's report_* calls with the oper_id.
M.COMMANDS = { "fetch_device_status", "update_firmware", "enter_page", "exit_page", "remote_open_door" }

-- nil/0 accepts ("success"); a non-zero code refuses with an encrypted
-- {"errcode","errmsg"} (bind's documented reply, used for commands too).
local function answer(code, emsg)
  if code == nil or code == 0 then return true end
  return { errcode = code, errmsg = emsg or "rejected" }
end

function M.handler(wc, o)
  if type(o) ~= "table" then error("wecom:callback: options table expected", 3) end
  local function base(msg) return type(msg.base_info) == "table" and msg.base_info or {} end
  local function event(msg) return type(msg.event) == "table" and msg.event or {} end
  local handlers = {
    model_ticket = function(msg)
      local t = event(msg).model_ticket
      if type(t) == "string" and t ~= "" then wc:set_model_ticket(t) end
      if o.on_model_ticket then o.on_model_ticket(t, base(msg)) end
      return true
    end,
    bind = function(msg)
      if not o.on_bind then return true end
      return answer(o.on_bind(event(msg), base(msg)))
    end,
    unbind = function(msg)
      if o.on_unbind then o.on_unbind(event(msg), base(msg)) end
      return true
    end,
  }
  -- Only what the vendor handles is registered: anything else gets the
  -- gateway's `unknown` answer.
  if o.on_verify_device then
    -- on_verify_device(device_sn_md5, base_info) → the modelid if the SN is
    -- the vendor's, else nil; answered encrypted (doc 96130).
    handlers.verify_device = function(msg)
      local modelid = o.on_verify_device(event(msg).device_sn_md5, base(msg))
      if type(modelid) == "string" and modelid ~= "" then return { is_valid = true, modelid = modelid } end
      return { is_valid = false }
    end
  end
  if o.on_command then
    -- on_command(command, base_info): command.command_type names it,
    -- command.oper_id identifies the operation to report on.
    local function run(msg)
      local cmd = type(msg.command) == "table" and msg.command or {}
      return answer(o.on_command(cmd, base(msg)))
    end
    for _, name in ipairs(M.COMMANDS) do handlers[name] = run end
  end
  if o.on_user_scan then
    -- user_scan (doc 97390: a member scanned the device's QR code; its
    -- oper_id is what a scan_qrcode_open result reports on) is answered with
    -- the device's state, encrypted {"online_status": 1 online | 2 offline}:
    -- on_user_scan(command, base_info) returns 1 or 2.
    handlers.user_scan = function(msg)
      local cmd = type(msg.command) == "table" and msg.command or {}
      local status = o.on_user_scan(cmd, base(msg))
      if status ~= 1 and status ~= 2 then error("wecom:callback: on_user_scan must return 1 (online) or 2 (offline)", 0) end
      return { online_status = status }
    end
  end
  return callback.wecom{
    token = o.token, encoding_aes_key = o.encoding_aes_key, receive_id = o.receive_id,
    dedup = o.dedup, on_event = o.on_event, clock = o.clock, max_skew = o.max_skew, max_body = o.max_body,
    unknown = o.unknown, handlers = handlers,
  }
end

return M

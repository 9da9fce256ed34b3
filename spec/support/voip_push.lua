--- WeChat's `iot_voip_notify` / `join_voip_room` push as the call specs send
-- it (cloud-server-sdk.html): every field filled, a fresh RoomId, ServerToken and
-- Sn each time unless given.
--
--   local push = require("support.voip_push").join
--   calls:join_voip_room(push("SN-1"))            -- or push(sn, room)
local M = {}

local seq = 0

function M.join(sn, room)
  seq = seq + 1
  local id = seq .. "-" .. math.random(1e6)
  return { MsgType = "event", Event = "iot_voip_notify", Action = "join_voip_room", Payload = "",
           RoomId = room or ("room-" .. id), SessionKey = "sk", ServerToken = "st-" .. id,
           ModelId = "m", Sn = sn or ("SN-" .. id), FromUserName = "o" }
end

return M

--- The call session state machine, with the cloud server SDK's states
-- (wx_cloudvoip_session_status_t) and hang-up reasons
-- (wx_cloudvoip_hangup_reason_t) of `cloudvoip_server.h`
-- (developers.weixin.qq.com/miniprogram/dev/framework/device/voip/cloud-server-sdk.html).
--
-- "caller" is the device side (the vendor cloud acting for the device) and
-- "callee" the WeChat user, as in the SDK header, whichever side dialled.
local errors = require "wxhw.errors"

local M = {}

M.states = { "IDLE", "CALLING", "TALKING", "REJECTED", "CANCELED", "HANGUP_BY_CALLER",
             "HANGUP_BY_CALLEE", "ABORTED", "BUSY", "TIMEOUT" }
M.code = {}   -- name --> SDK number (0..9)
M.name = {}   -- SDK number --> name
for i, s in ipairs(M.states) do M.code[s] = i - 1; M.name[i - 1] = s end

M.reasons = { UNKNOWN = 0, MANUAL = 1, SYSTEM = 6, APP = 7, DEVICE = 8, TIMEOUT = 10, REJECT = 11 }
M.reason_name = {}
for k, v in pairs(M.reasons) do M.reason_name[v] = k end

M.session_types = { video = 0, audio = 1 }

-- Allowed moves. IDLE: created, push not yet answered / worker not joined.
-- CALLING: ringing. TALKING: answered. Everything else is final.
local allowed = {
  IDLE = { CALLING = true, BUSY = true, ABORTED = true, CANCELED = true, REJECTED = true },
  CALLING = { TALKING = true, REJECTED = true, CANCELED = true, TIMEOUT = true, BUSY = true, ABORTED = true,
              HANGUP_BY_CALLEE = true },
  TALKING = { HANGUP_BY_CALLER = true, HANGUP_BY_CALLEE = true, ABORTED = true },
}
M.allowed = allowed

local final = {}
for _, s in ipairs(M.states) do if not allowed[s] then final[s] = true end end
M.final = final

--- Normalises a state given by name or SDK number; nil for unknown values.
function M.state(v)
  if type(v) == "number" then return M.name[v] end
  if type(v) == "string" and M.code[v] then return v end
  if type(v) == "string" and M.code[v:upper()] then return v:upper() end
  return nil
end

function M.is_final(s) return final[s] == true end
function M.is_active(s) return s == "IDLE" or s == "CALLING" or s == "TALKING" end

--- Checks a move; returns true or nil, err (kind "state").
function M.check(from, to)
  local f, t = M.state(from), M.state(to)
  if not f then return errors.fail("state", "unknown call state " .. tostring(from)) end
  if not t then return errors.fail("state", "unknown call state " .. tostring(to)) end
  if final[f] then
    return errors.fail("state", "call already ended (" .. f .. "), cannot move to " .. t, { from = f, to = t })
  end
  if not allowed[f][t] then
    return errors.fail("state", "illegal call transition " .. f .. " -> " .. t, { from = f, to = t })
  end
  return true
end

--- The hang-up reason recorded with a final state when none is given.
function M.default_reason(to)
  if to == "TIMEOUT" then return "TIMEOUT" end
  if to == "REJECTED" then return "REJECT" end
  if to == "HANGUP_BY_CALLER" or to == "HANGUP_BY_CALLEE" or to == "CANCELED" then return "MANUAL" end
  if final[to] then return "UNKNOWN" end
  return nil
end

function M.reason(v)
  if type(v) == "number" then return M.reason_name[v] end
  if type(v) == "string" and M.reasons[v:upper()] then return v:upper() end
  return nil
end

return M

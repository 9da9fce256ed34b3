--- Client for a call supervisor in another process (the call daemon), for
-- gateways that must not run processes or block: nginx workers use cosockets
-- (ngx.socket.tcp on "unix:/path"), plain Lua uses luasocket.
--
--   local remote = require("wxhw.call.remote").new{ socket_path = "/run/wxhw/calls.sock" }
--   callback.mini_program{ ..., handlers = remote:mp_handlers() }
--   remote:call("hangup", room_id, "device")
local frame = require "wxhw.media.frame"
local errors = require "wxhw.errors"

local M = {}
M.__index = M

function M.new(opts)
  if type(opts) ~= "table" or type(opts.socket_path) ~= "string" then
    error("remote.new: socket_path required", 2)
  end
  return setmetatable({ path = opts.socket_path, timeout = opts.timeout or 3 }, M)
end

local function connect(self)
  if ngx and ngx.socket and ngx.get_phase and ngx.get_phase() ~= "init" then -- luacheck: ignore ngx
    local s = ngx.socket.tcp() -- luacheck: ignore ngx
    s:settimeout(self.timeout * 1000)
    local ok, err = s:connect("unix:" .. self.path)
    if not ok then return nil, err end
    return s
  end
  local s = require("socket.unix").stream()
  s:settimeout(self.timeout)
  local ok, err = s:connect(self.path)
  if not ok then return nil, err end
  return s
end

--- Calls a method of the daemon's wxhw.call object; returns its result or nil, err.
function M:call(method, ...)
  local s, err = connect(self)
  if not s then return errors.fail("io", "call daemon unreachable: " .. tostring(err)) end
  local ok, serr = s:send(frame.control({ op = "rpc", method = method, args = { ... } }))
  if not ok then s:close(); return errors.fail("io", "call daemon send failed: " .. tostring(serr)) end
  local hdr, rerr = s:receive(16)
  if not hdr then s:close(); return errors.fail("io", "call daemon did not answer: " .. tostring(rerr)) end
  local len = ((hdr:byte(13) * 256 + hdr:byte(14)) * 256 + hdr:byte(15)) * 256 + hdr:byte(16)
  local body = len > 0 and s:receive(len) or ""
  s:close()
  if not body then return errors.fail("io", "call daemon answer truncated") end
  local frames = frame.decoder():push(hdr .. body)
  local res = frames and frames[1] and frame.decode_control(frames[1])
  if not res then return errors.fail("io", "call daemon sent a malformed answer") end
  if not res.ok then return errors.fail("state", tostring(res.error)) end
  return res.result
end

--- Handlers for callback.mini_program: the push is answered with the daemon's
-- decision; if the daemon is down the handler fails (500), so WeChat retries.
function M:mp_handlers()
  return { iot_voip_notify = function(msg)
    local r, err = self:call("join_voip_room", msg)
    if not r then return nil, err end
    return r
  end }
end

return M

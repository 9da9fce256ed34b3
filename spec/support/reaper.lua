--- Servers a spec starts are stopped when the Lua state closes, even when
-- the spec forgot or failed before its teardown.
--   local live = require("support.reaper").new()   -- a set: live[srv] = true
-- Every member's :stop() runs at state close; remove a member once stopped.
local M = {}

function M.new()
  local live = {}
  local function reap()
    for srv in pairs(live) do srv:stop() end
  end
  local anchor
  if newproxy then -- LuaJIT runs __gc on userdata only
    anchor = newproxy(true)
    getmetatable(anchor).__gc = reap
  else
    anchor = setmetatable({}, { __gc = reap })
  end
  -- the anchor lives as long as the set
  return setmetatable(live, { __index = { _anchor = anchor } })
end

return M

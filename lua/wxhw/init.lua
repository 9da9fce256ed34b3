--- wxhw: WeChat, WeCom and WeChat Pay for smart-hardware back ends.
-- Submodules load on first use: `wxhw.crypto`, `wxhw.pay`, `wxhw.msgcrypt` ...
local core = require "wxhw.core"

-- _VERSION (and version) = the C core's, the rockspec's and `wxhw --version`'s
local wxhw = { _VERSION = core.version, version = core.version, _core = core }

return setmetatable(wxhw, {
  __index = function(t, name)
    if type(name) ~= "string" or not name:match("^[%w_]+$") then return nil end
    local ok, mod = pcall(require, "wxhw." .. name)
    if not ok then
      if tostring(mod):find("module 'wxhw." .. name .. "' not found", 1, true) then return nil end
      error(mod, 2)
    end
    rawset(t, name, mod)
    return mod
  end,
  __tostring = function() return "wxhw " .. core.version end,
})

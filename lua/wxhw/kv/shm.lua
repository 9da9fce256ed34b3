--- kv store in a file mapping shared by the processes of one host
-- (csrc kvshm): nginx workers without a lua_shared_dict. See wxhw.kv.
-- The Lua façade of that C class: the only module that reaches it.
local kvshm = require("wxhw.core").kvshm

local M = {}
M.__index = M

--- opts: path (a file, e.g. under /dev/shm; created mode 0600), entries (live
-- keys it must hold), value_bytes (longest value, default 256). Every
-- process opening the same path with the same shape shares the table.
function M.new(opts)
  if type(opts) ~= "table" or type(opts.path) ~= "string" or not opts.entries then
    error("store.shm: opts.path and opts.entries are required", 2)
  end
  local t, err = kvshm.open(opts.path, opts.entries, opts.value_bytes or 256)
  if not t then return nil, err end
  -- get/set/add/cas/delete are the C methods bound to the table (one C call
  -- each); the Lua side only adds sorted keys() and a readable tostring.
  return setmetatable(t:bind{ kind = "shm", shared = true, t = t, path = opts.path }, M)
end

function M:keys(prefix)
  local out = self.t:keys(prefix or "")
  table.sort(out)
  return out
end
function M:stats() return self.t:stats() end
function M:close() self.t:close() end
function M:__tostring() return "wxhw shm kv store (" .. tostring(self.t) .. ")" end

return M

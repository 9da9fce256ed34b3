--- The de-duplication stores nginx workers can share, as the Lua text of a
-- `dedup = ...` option inside an nginx config (conf(path): path is a fresh
-- file for the shm table), with an optional check of what a run left.
local luassert = require "luassert"

return {
  { name = "lua_shared_dict", conf = function() return 'require("wxhw.callback.ngx").dedup("wxhw_callbacks")' end },
  { name = "shm table", conf = function(path)
      return ('require("wxhw.callback.ngx").dedup{ shm = %q, entries = 1000 }'):format(path)
    end,
    check = function(path) -- the one push left one entry
      local st = luassert(require("wxhw.call.store").shm{ path = path, entries = 1000, value_bytes = 512 })
      luassert.equal(1, st:stats().entries)
      st:close()
    end },
}

--- Small key/value stores for call sessions, authorisations and callback
-- de-duplication, below both the callback gateway and the call workflow.
-- The token stores (wxhw.token.store.*) hold token records only
-- (lease/commit/invalidate); this is the narrow interface the others need,
-- one backend a file:
--
--   kv.memory()             one Lua state (scripts, tests, one worker)
--   kv.redis(opts | conn)   many hosts, on the one wxhw.redis connection
--   kv.ngx_shared(dict)     OpenResty lua_shared_dict (all nginx workers)
--   kv.shm{ path =, entries =, value_bytes = }
--                           a hash table in a file mapping shared by the
--                           processes of one host (wxhw.core.kvshm): nginx
--                           workers without a lua_shared_dict, 1-2 cache
--                           misses an operation (docs/callback.md)
--
-- Interface (values are strings; ttl in seconds, nil/0 = no expiry):
--   s:get(key)                    --> value | nil            (nil, err on failure)
--   s:set(key, value, ttl)        --> true
--   s:add(key, value, ttl)        --> true | false (key exists)   atomic
--   s:cas(key, old, new, ttl)     --> true | false (value was not `old`) atomic
--   s:delete(key)                 --> true
--   s:keys(prefix)                --> { key, ... }
local BACKENDS = { memory = true, redis = true, ngx_shared = true, shm = true }

-- A backend's file is loaded on first use; kv.<name> is its constructor.
return setmetatable({}, { __index = function(M, name)
  if not BACKENDS[name] then return nil end
  local new = require("wxhw.kv." .. name).new
  rawset(M, name, new)
  return new
end })

--- Token store shared by every process of one host: an mmap'd file (0600)
-- managed by the C core (csrc/store/token_shm.c). No server; the default store.
-- The Lua façade of that C class: the only module that reaches it.
local ts = require("wxhw.core").tokenstore

local M = {}
M.__index = M

-- The effective uid (Linux /proc), else nil.
local function euid()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s:match("\nUid:%s*%d+%s+(%d+)")
end

--- The default file: $WXHW_TOKEN_STORE, else $XDG_RUNTIME_DIR/wxhw-tokens,
-- else /tmp/wxhw-tokens-<uid> (the C side refuses files owned by others or
-- readable by group/others, so a shared /tmp is safe). The uid, not $USER:
-- nginx clears the environment of its workers, and every user without a
-- $USER would otherwise name the same file (whose owner alone could open it).
function M.default_path()
  local p = os.getenv("WXHW_TOKEN_STORE")
  if p and p ~= "" then return p end
  local run = os.getenv("XDG_RUNTIME_DIR")
  if run and run ~= "" then return run .. "/wxhw-tokens" end
  local id = euid()
  if id then return "/tmp/wxhw-tokens-" .. id end
  local user = os.getenv("USER") or os.getenv("LOGNAME") or "user"
  return "/tmp/wxhw-tokens-" .. user:gsub("[^%w_.-]", "_")
end

--- opts: path (default above), slots (default 256; fixed when the file is made).
function M.new(opts)
  opts = opts or {}
  local path = opts.path or M.default_path()
  local ud, err = ts.shm_open(path, opts.slots)
  if not ud then return nil, err end
  return setmetatable({ kind = "shm", shared = true, path = path, ud = ud, slots = {} }, M)
end

local function slot(self, key)
  local i = self.slots[key]
  if i then return i end
  local err
  i, err = self.ud:slot(key)
  if not i then return nil, err end
  self.slots[key] = i
  return i
end

-- The C method `name` on the record of `key`: (ud, slot, ...) -> its
-- results, or nil, err when the key has no slot (the file is full).
local function on_slot(name)
  return function(self, key, ...)
    local i, err = slot(self, key)
    if not i then return nil, err end
    local ud = self.ud
    return ud[name](ud, i, ...)
  end
end

local get, lease, commit = on_slot("get"), on_slot("lease"), on_slot("commit")

function M:get(key)
  local token, expires_at, fetched_at, gen = get(self, key)
  if token == nil then return nil, expires_at end
  return { token = token, expires_at = expires_at, fetched_at = fetched_at, gen = gen }
end

--- A function returning the record's generation: one atomic load in C.
function M:peeker(key)
  local i = slot(self, key)
  if not i then return nil end
  return self.ud:peeker(i)
end

function M:lease(key, ttl)
  local ok, id_or_pid, left = lease(self, key, ttl)
  if ok == nil then return nil, id_or_pid end
  if ok then return id_or_pid end
  return false, "pid " .. tostring(id_or_pid), left
end

function M:commit(key, lease_id, token, expires_at, fetched_at)
  return commit(self, key, lease_id or 0, token, expires_at, fetched_at)
end

M.release = on_slot("release")
M.invalidate = on_slot("invalidate")
M.force_permit = on_slot("force_permit")
--- Record metadata without the token: key, expires_at, fetched_at, gen,
-- has_token, lease_pid, lease_left, commits, force_count.
M.info = on_slot("info")

function M:keys() return self.ud:keys() end
function M:close() self.ud:close() end
function M:__tostring() return tostring(self.ud) end

return M

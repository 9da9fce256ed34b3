--- Recognises retransmitted pushes. WeChat and WeCom resend a push whose
-- reply was late or rejected; the copy is answered with the first reply,
-- byte for byte, without running the handler again.
--
-- Entry states in the kv store (wxhw.call.store interface):
--   "P"            the first copy is being handled (claimed with add())
--   "D" .. reply   done: the serialised reply
-- A failed handler deletes its claim so the next retransmission runs it.
local crypto = require "wxhw.crypto"

local M = {}
M.__index = M

--- opts: store (kv), ttl (s, default 600: longer than WeChat's retry window),
-- wait (s a duplicate waits for an in-flight first copy, default 4),
-- sleep (function(seconds); ngx.sleep in nginx, nil = don't wait).
function M.new(opts)
  opts = opts or {}
  local store = opts.store or require("wxhw.call.store").memory()
  return setmetatable({ store = store, ttl = opts.ttl or 600, wait = opts.wait or 4,
                        sleep = opts.sleep, prefix = opts.prefix or "dup:" }, M)
end

--- Key for a push: an explicit id when the message carries one (MsgId,
-- WeCom base_info.req_id), else a digest of the decrypted message.
function M.key(kind, id, plaintext)
  if id ~= nil and id ~= "" then return kind .. ":id:" .. tostring(id) end
  return kind .. ":sha1:" .. crypto.hex(crypto.sha1(plaintext))
end

local function encode(status, ctype, body)
  return "D" .. status .. "\n" .. (ctype or "") .. "\n" .. body
end

local function decode(v)
  local status, ctype, body = v:match("^D(%d+)\n([^\n]*)\n(.*)$")
  return tonumber(status), ctype ~= "" and ctype or nil, body
end
M.decode = decode

--- Claims `key`. Returns "new" (caller runs the handler and then calls
-- done() or abandon()), or "dup", status, ctype, body, or "busy" when a
-- first copy is still running past the wait.
function M:claim(key)
  local k = self.prefix .. key
  local waited, tries = 0, 0
  while true do
    tries = tries + 1
    local ok, err = self.store:add(k, "P", self.ttl)
    if ok == nil then return nil, err end
    if ok then return "new" end
    local v = self.store:get(k)
    if v and v:sub(1, 1) == "D" then return "dup", decode(v) end
    if v == nil and tries < 100 then -- luacheck: ignore
      -- expired or abandoned between add() and get(): claim again
    elseif not self.sleep or waited >= self.wait then
      return "busy"
    else
      self.sleep(0.01)
      waited = waited + 0.01
    end
  end
end

function M:__tostring() return "wxhw.callback.Dedup(" .. tostring(self.store) .. ", ttl " .. self.ttl .. " s)" end

function M:done(key, status, ctype, body)
  return self.store:set(self.prefix .. key, encode(status, ctype, body), self.ttl)
end

function M:abandon(key)
  return self.store:cas(self.prefix .. key, "P", nil)
end

return M

--- Recognises retransmitted pushes. WeChat and WeCom resend a push whose
-- reply was late or rejected; the copy is answered with the first reply,
-- byte for byte, without running the handler again.
--
-- Entry states in the kv store (wxhw.kv interface):
--   "P" .. owner [.. pad]   the first copy is being handled (claimed with
--                  add()) by `owner` (wxhw.owner: boot id, pid, start time)
--                  for a short lease (opts.lease)
--   "D" .. reply   done: the serialised reply, kept for opts.ttl
--   "E" .. reply   done, with the body's length and padding (opts.entry_bytes)
-- A failed handler deletes its claim so the next retransmission runs it.
-- A claim outlives its process only until the lease ends: a copy that finds
-- the claimant gone (a dead pid on this host) takes the claim over at once
-- (cas, so one copy wins), and elsewhere the claim simply expires. A worker
-- killed inside a handler thus costs one retransmission, not the push. The
-- lease must exceed the longest a handler may run (WeChat's reply deadline
-- is 5 s, WeCom's 1-3 s): past it a copy runs the handler a second time.
--
-- entry_bytes (lua_shared_dict): claim and reply are padded to the same
-- length, key included, so the reply overwrites the claim where it lies (the
-- dict reuses a node only for a value of equal length; otherwise it frees,
-- allocates and re-links it in its tree, which costs more than the lookup
-- and, with several workers, moves more cache lines between cores). A reply
-- that does not fit is stored unpadded. The shm store (wxhw.kv.shm)
-- is never padded; a reply longer than its value_bytes is not stored: done()
-- returns nil, err and copies get a plain "success" (see ACK below).
local crypto = require "wxhw.crypto"
local json = require "wxhw.json"
local owner = require "wxhw.owner"
local monotonic = require("wxhw.clock").monotonic

local M = {}
M.__index = M

--- opts: store (kv), ttl (s a reply is kept, default 600: longer than
-- WeChat's retry window), lease (s a claim lasts without its reply, default
-- 6: WeChat's 5 s reply deadline and a margin), wait (s a duplicate waits for
-- an in-flight first copy, default 4), sleep (function(seconds); ngx.sleep in
-- nginx, nil = don't wait), retry_after (s the store is left alone after it
-- failed, default 5: a Redis that stopped answering cost every push its
-- timeout, 1 s by default and WeCom's whole reply deadline; meanwhile claim
-- answers nil, err at once and the push is handled unguarded).
M.LEASE = 6
M.RETRY_AFTER = 5

function M.new(opts)
  opts = opts or {}
  local store = opts.store or require("wxhw.kv").memory()
  -- The shm store has fixed slots: padding would only waste its value_bytes.
  local eb = store.kind ~= "shm" and opts.entry_bytes or nil
  local lease = opts.lease or M.LEASE
  if type(lease) ~= "number" or lease <= 0 then error("dedup.new: lease must be a positive number of seconds", 2) end
  return setmetatable({ store = store, ttl = opts.ttl or 600, lease = lease, wait = opts.wait or 4,
                        sleep = opts.sleep, prefix = opts.prefix or "dup:", entry_bytes = eb,
                        retry_after = opts.retry_after or M.RETRY_AFTER }, M)
end

local sub, rep, find, byte = string.sub, string.rep, string.find, string.byte

-- Runs of spaces (at most 1024, made once) and this process's claims by
-- padded length (nil: unpadded), made again after a fork: a push then
-- creates no claim or padding strings of its own.
local PADS = setmetatable({}, { __index = function(t, n) local v = rep(" ", n); t[n] = v; return v end })
local claims, claims_of = {}, nil

local function my_claim(n)
  local id = owner.id()
  if id ~= claims_of then claims, claims_of = {}, id end
  local v = claims[n or 0]
  if not v then
    v = "P" .. id .. " "
    if n and n > #v then v = v .. PADS[n - #v] end
    claims[n or 0] = v
  end
  return v
end

-- The owner named by a claim (nil for a claim without one).
local function claimant(v) return (v:match("^P(%S+)")) end

-- Value length of a padded entry for key k (nil: no padding).
local function slot(self, k)
  local eb = self.entry_bytes
  if not eb then return nil end
  local n = eb - #k
  if n < 2 or n > 1024 then return nil end
  return n
end

--- Key for a push: an explicit id when the message carries one (MsgId,
-- WeCom base_info.req_id), named with the account (`scope`) when given,
-- else a digest of the decrypted message (which names its account itself).
function M.key(kind, id, plaintext, scope)
  -- a string or a number only: a null or boolean MsgId names no push (every
  -- push carrying one would share a key, and all but the first be lost)
  local t = type(id)
  if (t == "string" and id ~= "") or t == "number" then
    -- an id is unique within its account only: `scope` (the appid, the
    -- receive_id) keeps two accounts sharing a store apart
    if scope then return kind .. ":id:" .. scope .. ":" .. json.id(id) end
    return kind .. ":id:" .. json.id(id)
  end
  return kind .. ":sha1:" .. crypto.hex(crypto.sha1(plaintext))
end

local function encode(status, ctype, body, n)
  if n then
    local head = "E" .. status .. "\n" .. (ctype or "") .. "\n" .. #body .. "\n"
    local short = n - #head - #body
    if short == 0 then return head .. body end
    if short > 0 then return head .. body .. PADS[short] end
  end
  return "D" .. status .. "\n" .. (ctype or "") .. "\n" .. body
end

-- Plain finds rather than patterns: string.match and a find with a pattern
-- end LuaJIT's trace, and a third of the pushes a busy gateway sees may be
-- retransmissions answered from here.
local function decode(v)
  local a = find(v, "\n", 2, true)
  local b = a and find(v, "\n", a + 1, true)
  if not b then return nil end
  local status = tonumber(sub(v, 2, a - 1))
  local ctype = b > a + 1 and sub(v, a + 1, b - 1) or nil
  if byte(v, 1) == 69 then -- "E": the body's length, then the body and padding
    local c = find(v, "\n", b + 1, true)
    local len = c and tonumber(sub(v, b + 1, c - 1))
    if not len then return nil end
    return status, ctype, sub(v, c + 1, c + len)
  end
  return status, ctype, sub(v, b + 1)
end
M.decode = decode

--- Whether a stored value is a finished reply (not a claim).
local function is_done(v)
  local t = sub(v, 1, 1)
  return t == "D" or t == "E"
end
M.is_done = is_done

-- The store failed: leave it alone for retry_after seconds.
local function store_down(self, err)
  self.down_until, self.down_err = monotonic() + self.retry_after, err
  return nil, err
end

-- A copy of `key` (k with the prefix) found a value: a reply, a live claim
-- (wait for it), a dead claimant's (take over), or none (claim again).
local function contended(self, k, claim)
  local waited, tries = 0, 1
  while true do
    local v = self.store:get(k)
    if v and is_done(v) then
      local status, ctype, body = decode(v)
      -- a damaged entry: the push is handled unguarded, as when the store fails
      if not status then return nil, "de-dup entry for " .. k .. " cannot be read" end
      return "dup", status, ctype, body
    end
    if v == nil and tries < 100 then -- luacheck: ignore
      -- expired or abandoned between add() and get(): claim again
    elseif v and tries < 100 and owner.gone(claimant(v)) then
      -- its claimant died inside the handler: take over (one copy wins)
      local ok, err = self.store:cas(k, v, claim, self.lease)
      if ok == nil then return store_down(self, err) end
      if ok then return "new" end
    elseif not self.sleep or waited >= self.wait then
      return "busy"
    else
      self.sleep(0.01)
      waited = waited + 0.01
    end
    tries = tries + 1
    local ok, err = self.store:add(k, claim, self.lease)
    if ok == nil then return store_down(self, err) end
    if ok then return "new" end
  end
end

--- Claims `key`. Returns "new" (caller runs the handler and then calls
-- done() or abandon()), or "dup", status, ctype, body, or "busy" when a
-- first copy is still running past the wait; nil, err when the store failed
-- (now or less than retry_after seconds ago).
function M:claim(key)
  if self.down_until then
    if monotonic() < self.down_until then return nil, self.down_err end
    self.down_until = nil
  end
  local k = self.prefix .. key
  local claim = my_claim(slot(self, k))
  -- a new push (nearly every one) claims here, outside the loop: LuaJIT
  -- does not compile an inner loop into the request's trace, so the loop
  -- below (entered only for copies) aborted that trace on every push
  local ok, err = self.store:add(k, claim, self.lease)
  if ok == nil then return store_down(self, err) end
  if ok then return "new" end
  return contended(self, k, claim)
end

function M:__tostring() return "wxhw.callback.Dedup(" .. tostring(self.store) .. ", ttl " .. self.ttl .. " s)" end

-- Kept when a reply cannot be (larger than the store's values): copies are
-- acknowledged rather than left waiting on a claim until it expires.
local ACK = "D200\ntext/plain; charset=utf-8\nsuccess"

--- Stores the reply for copies of `key`. If the store refuses it (a shm
-- table's value_bytes), copies get a plain "success" acknowledgement and
-- done returns nil, err.
function M:done(key, status, ctype, body)
  local k = self.prefix .. key
  local ok, err = self.store:set(k, encode(status, ctype, body, slot(self, k)), self.ttl)
  if ok then return ok end
  self.store:set(k, ACK, self.ttl)
  return nil, err
end

function M:abandon(key)
  local k = self.prefix .. key
  return self.store:cas(k, my_claim(slot(self, k)), nil)
end

return M

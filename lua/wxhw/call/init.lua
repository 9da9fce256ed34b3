--- VoIP call orchestration for cloud-to-cloud devices
-- (developers.weixin.qq.com/miniprogram/dev/framework/device/device-voip.html).
--
--   local calls = require("wxhw.call").new{
--     store = kv,                -- wxhw.call.store (memory / redis / ngx.shared)
--     worker = supervisor,       -- :start(session) :hangup(session, reason) :stop(session)
--     ring_timeout = 30, time_limit = nil, clock = wxhw.clock.now,
--     api = function(path, body) ... end,   -- POST to WeChat (server-initiated calls)
--     on_transition = function(session, from, to) end,
--     notify_device = function(session) end, -- phone → device: tell the device
--   }
--   gateway handlers: calls:mp_handlers()  --> { iot_voip_notify = fn }
--
-- Sessions are kv records ("call:<RoomId>", JSON) changed only by
-- compare-and-set, so a second gateway or a restart sees the same calls;
-- "dev:<model>:<sn>" holds the RoomId of the device's active call (busy);
-- "act:<RoomId>" marks active calls for tick(); "pend:<payload>" is a call
-- the vendor prepared (device → phone, phone → device, server-initiated).
local cjson = require "cjson.safe"
local errors = require "wxhw.errors"
local machine = require "wxhw.call.machine"
local crypto = require "wxhw.crypto"
local owner = require "wxhw.owner"

local M = { machine = machine, states = machine.states, reasons = machine.reasons }

local Calls = {}
Calls.__index = Calls

local Session = {}
Session.__index = Session
local SECRET = { session_key = true, server_token = true }
function Session:__tostring()
  return ("wxhw.call.Session(%s %s sn=%s state=%s)"):format(tostring(self.room_id), tostring(self.direction),
                                                          tostring(self.sn), tostring(self.state))
end
M.Session = Session

local function now_default() return require("wxhw.clock").now() end

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    store = opts.store or require("wxhw.call.store").memory(),
    worker = opts.worker, api = opts.api, notify_device = opts.notify_device,
    ring_timeout = opts.ring_timeout or 30, time_limit = opts.time_limit,
    clock = opts.clock or now_default, listeners = {},
    pending_ttl = opts.pending_ttl or 120, keep_ended = opts.keep_ended or 86400,
    accept_unknown = opts.accept_unknown ~= false, auth = opts.auth, hook_errors = 0,
  }, Calls)
  if opts.on_transition then self:on("transition", opts.on_transition) end
  return self
end

--- Subscribes to "transition" (session, from, to) events; returns an unsubscribe function.
function Calls:on(event, fn)
  if event ~= "transition" then error("calls:on: unknown event " .. tostring(event), 2) end
  local l = self.listeners
  l[#l + 1] = fn
  return function() for i = #l, 1, -1 do if l[i] == fn then table.remove(l, i) end end end
end

local function emit(self, s, from, to)
  for _, fn in ipairs(self.listeners) do
    local ok = pcall(fn, s, from, to)
    if not ok then self.hook_errors = self.hook_errors + 1 end
  end
end

local function decode(raw)
  if not raw then return nil end
  local t = cjson.decode(raw)
  if type(t) ~= "table" then return nil end
  return setmetatable(t, Session)
end

local function encode(s)
  local t = {}
  for k, v in pairs(s) do t[k] = v end
  return assert(cjson.encode(t))
end

function Calls:get(room_id)
  local raw, err = self.store:get("call:" .. room_id)
  if err then return nil, err end
  return decode(raw)
end

--- A copy of the session without its credentials (for logs and APIs).
function M.public(s)
  local t = {}
  for k, v in pairs(s) do if not SECRET[k] then t[k] = v end end
  return setmetatable(t, Session)
end

-- The sessions marked active, and the marks whose session has ended or is
-- gone (a gateway that died between ending a call and releasing it).
local function scan(self)
  local keys, err = self.store:keys("act:")
  if not keys then return nil, err end
  local out, stale = {}, {}
  for _, k in ipairs(keys) do
    local s, gerr = self:get(k:sub(5))
    if s and machine.is_active(s.state) then out[#out + 1] = s
    elseif not gerr then stale[#stale + 1] = k end
  end
  return out, stale
end

--- Active sessions (IDLE, CALLING, TALKING).
function Calls:active()
  local out, err = scan(self)
  if not out then return nil, err end
  return out
end

local function dev_key(s) return "dev:" .. s.model_id .. ":" .. s.sn end

-- Releases what an ended call holds: the device lock and the active mark.
local function release(self, s)
  self.store:cas(dev_key(s), s.room_id, nil)
  self.store:delete("act:" .. s.room_id)
end

local function no_call(room_id)
  return errors.fail("state", "no call " .. tostring(room_id), { reason = "no_call" })
end

-- Applies one move by compare-and-set. decide(s) names the move (target,
-- reason) from the session as stored now, and is asked again after every lost
-- swap: a move decided on a state another gateway has since changed (a
-- hang-up while the answer lands) is decided afresh, never lost or forced.
-- decide returning nil leaves the session as it is. on_swap(s, from) runs
-- once the move is stored, before the worker is stopped: side effects (telling
-- the worker to hang up) only for a move that really happened.
local function apply(self, room_id, decide, fields, on_swap)
  for _ = 1, 20 do
    local raw, gerr = self.store:get("call:" .. room_id)
    if gerr then return nil, gerr end
    local s = decode(raw)
    if not s then return no_call(room_id) end
    local from = s.state
    local target, reason = decide(s)
    if not target or from == target then return s, "unchanged" end
    local ok, err = machine.check(from, target)
    if not ok then return nil, err end
    local t = self.clock()
    s.state, s.v = target, (s.v or 0) + 1
    s.history = s.history or {}
    s.history[#s.history + 1] = { target, t }
    if target == "CALLING" then s.ring_deadline = t + (s.ring_timeout or self.ring_timeout) end
    if target == "TALKING" then s.talk_at = t end
    if machine.is_final(target) then
      s.ended_at = t
      s.reason = machine.reason(reason) or machine.default_reason(target)
    end
    for k, v in pairs(fields or {}) do s[k] = v end
    local ttl = machine.is_final(target) and self.keep_ended or nil
    local swapped, cerr = self.store:cas("call:" .. room_id, raw, encode(s), ttl)
    if swapped == nil then return nil, cerr end
    if swapped then
      if on_swap then pcall(on_swap, s, from) end
      if machine.is_final(target) then
        release(self, s)
        if self.worker and self.worker.stop then pcall(self.worker.stop, self.worker, s) end
      end
      emit(self, s, from, target)
      return s
    end
  end
  return errors.fail("state", "call " .. tostring(room_id) .. " changed concurrently too often")
end

--- Moves a session to `to` (name or SDK number). A report of the state it
-- is already in is a no-op (workers repeat CALLING); anything the machine
-- does not allow is an error and changes nothing. Returns the session.
function Calls:transition(room_id, to, reason, fields)
  local target = machine.state(to)
  if not target then return errors.fail("state", "unknown call state " .. tostring(to)) end
  return apply(self, room_id, function() return target, reason end, fields)
end

--- Adds or changes fields of a session without changing its state (e.g.
-- which supervisor runs its worker). `state` and `v` cannot be set here.
function Calls:update(room_id, fields)
  for _ = 1, 20 do
    local raw, gerr = self.store:get("call:" .. room_id)
    if gerr then return nil, gerr end
    local s = decode(raw)
    if not s then return no_call(room_id) end
    for k, v in pairs(fields) do
      if k == "state" or k == "v" then error("calls:update: use transition() to change the state", 2) end
      s[k] = v
    end
    local ok, err = self.store:cas("call:" .. room_id, raw, encode(s), machine.is_final(s.state) and self.keep_ended or nil)
    if ok == nil then return nil, err end
    if ok then return s end
  end
  return errors.fail("state", "call " .. tostring(room_id) .. " changed concurrently too often")
end

-- Prepared calls --------------------------------------------------------------

local function prepare(self, kind, o)
  local payload = o.payload or crypto.nonce(24)
  local rec = { direction = kind, sn = o.sn, model_id = o.model_id, openid = o.openid,
                time_limit = o.time_limit, room_type = o.room_type or "video", ring_timeout = o.ring_timeout }
  local ok, err = self.store:set("pend:" .. payload, assert(cjson.encode(rec)), self.pending_ttl)
  if not ok then return nil, err end
  return payload
end

local function device_busy(self, model_id, sn)
  local room = self.store:get("dev:" .. model_id .. ":" .. sn)
  if not room then return false end
  local s = self:get(room)
  return s ~= nil and machine.is_active(s.state), room
end

local function need(o, ...)
  if type(o) ~= "table" then error("options table required", 3) end
  for _, k in ipairs{ ... } do
    if type(o[k]) ~= "string" or o[k] == "" then error(k .. " must be a non-empty string", 3) end
  end
end

--- Device → phone: the device asked (over the vendor's channel) to call
-- `openid`. Checks authorisation and busy, then returns the payload the
-- device passes to wx_cloudvoip_client_call.
function Calls:prepare_device_call(o)
  need(o, "sn", "model_id", "openid")
  if self.auth then
    local ok, err = self.auth:may_call(o.sn, o.model_id, o.openid)
    if ok == nil then return nil, err end
    if not ok then return errors.fail("state", "user has not authorised this device (wx.requestDeviceVoIP)",
                                      { reason = "unauthorised", errcode = 9 }) end
  end
  if device_busy(self, o.model_id, o.sn) then
    return errors.fail("state", "device is already in a call", { reason = "busy" })
  end
  return prepare(self, "device_to_phone", o)
end

--- Phone → device (plugin callDevice with isCloud=true): the payload the
-- Mini Program passes to callDevice.
function Calls:prepare_phone_call(o)
  need(o, "sn", "model_id")
  return prepare(self, "phone_to_device", o)
end

--- Server-initiated call: POST /wxa/business/iot/voip/call (named in
-- cloudvoip_server.h; no official page, the schema is unconfirmed). Returns the room id WeChat answered with, and the payload.
function Calls:server_call(o)
  need(o, "sn", "model_id", "openid")
  if not self.api then error("calls:server_call: no api function configured", 2) end
  if device_busy(self, o.model_id, o.sn) then
    return errors.fail("state", "device is already in a call", { reason = "busy" })
  end
  local payload, perr = prepare(self, "server", o)
  if not payload then return nil, perr end
  local body = { model_id = o.model_id, sn = o.sn, openid = o.openid, room_type = o.room_type or "video",
                 payload = payload, listener_name = o.listener_name, version_type = o.version_type,
                 caller_camera_status = o.caller_camera_status, listener_camera_status = o.listener_camera_status,
                 query = o.query }
  local res, err = self.api("/wxa/business/iot/voip/call", body)
  if not res then
    self.store:delete("pend:" .. payload)
    return nil, err
  end
  return res.roomid or res.room_id, payload
end

-- The join_voip_room push --------------------------------------------------------

local function refuse(code, msg) return { errcode = code, errmsg = msg } end
local CAPACITY = "call capacity reached"

-- The answer to a copy of a push whose session exists (a retransmission the
-- gateway's de-duplication did not see, or the same push at two gateways at
-- once). While the other gateway is still setting the call up (IDLE) its
-- outcome is unknown: "ok" would let WeChat ring a call that may end BUSY, so
-- this copy fails (500) and WeChat's retransmission gets the outcome.
local function answer_again(s)
  if not s or s.state == "IDLE" then
    return errors.fail("state", "call is being set up by another gateway; answer again later")
  end
  if machine.is_active(s.state) then return refuse(0, "ok") end
  if s.state == "BUSY" then return refuse(1, s.error and "busy: " .. s.error or "device busy") end
  return refuse(1, "call already ended")
end

-- A session left IDLE by a gateway that died setting it up (its setup_by
-- owner, wxhw.owner, is gone: kill -9 inside the handler): this copy of the
-- push takes the setup over (compare-and-set, so one copy wins) and
-- finishes it, rather than answering 500 until tick() aborts the call
-- after the ring timeout. Returns the session taken over, or nil.
local function take_over(self, room)
  local raw = self.store:get("call:" .. room)
  local s = decode(raw)
  if not s or s.state ~= "IDLE" or not owner.gone(s.setup_by) then return nil end
  s.setup_by = owner.id()
  if not self.store:cas("call:" .. room, raw, encode(s), nil) then return nil end
  return s
end

local setup -- defined below

--- Handles the decrypted iot_voip_notify push. Returns the reply table: errcode
-- 0 lets WeChat ring; anything else cancels the call. nil, err (the gateway
-- answers 500, WeChat sends the push again) for a copy of a push another
-- gateway is still setting up.
function Calls:join_voip_room(msg)
  if msg.Action ~= "join_voip_room" then return refuse(40001, "unsupported Action") end
  for _, k in ipairs{ "RoomId", "ServerToken", "Sn", "ModelId" } do
    if type(msg[k]) ~= "string" or msg[k] == "" then return refuse(40001, "missing " .. k) end
  end
  local room = msg.RoomId
  local existing = self:get(room)
  if existing then
    local mine = existing.state == "IDLE" and take_over(self, room)
    if not mine then return answer_again(existing) end
    return setup(self, mine)
  end
  local pend = msg.Payload and msg.Payload ~= "" and self.store:get("pend:" .. msg.Payload)
  pend = pend and cjson.decode(pend) or nil
  if not pend and not self.accept_unknown then return refuse(2, "unknown call payload") end
  pend = pend or { direction = "unknown" }
  local s = setmetatable({
    room_id = room, direction = pend.direction, sn = msg.Sn, model_id = msg.ModelId,
    openid = pend.openid or msg.FromUserName, payload = msg.Payload, session_key = msg.SessionKey,
    server_token = msg.ServerToken, room_type = pend.room_type or "video",
    time_limit = pend.time_limit or self.time_limit, ring_timeout = pend.ring_timeout,
    state = "IDLE", v = 0, created_at = self.clock(), history = { { "IDLE", self.clock() } },
    setup_by = owner.id(),
  }, Session)
  if pend.sn and (pend.sn ~= s.sn or pend.model_id ~= s.model_id) then
    return refuse(3, "payload was prepared for another device")
  end
  local ok, err = self.store:add("call:" .. room, encode(s), nil)
  if ok == nil then return refuse(-1, "store unavailable: " .. tostring(err and err.message)) end
  if not ok then return answer_again(self:get(room)) end -- raced with another gateway on the same push
  if msg.Payload and msg.Payload ~= "" then self.store:delete("pend:" .. msg.Payload) end
  emit(self, s, nil, "IDLE")
  return setup(self, s)
end

-- The setup of an IDLE session this gateway holds: from the active mark to
-- CALLING (or BUSY / ABORTED), each step safe to repeat after a gateway died
-- between two of them.
setup = function(self, s)
  local room = s.room_id
  -- marked active before the device is locked: tick() then sees (and ends)
  -- every call holding a lock, also one whose gateway dies right here
  self.store:set("act:" .. room, "1")
  -- past what the host can carry a call is refused (BUSY: WeChat cancels it)
  -- before it takes the device, rather than admitted and lost
  local w = self.worker
  if w and w.full and w:full() then
    self:transition(room, "BUSY", "UNKNOWN", { error = CAPACITY })
    return refuse(1, "busy: " .. CAPACITY)
  end
  -- busy: the device already has an active call
  local locked = self.store:add(dev_key(s), room, nil)
  if not locked then
    local busy, other = device_busy(self, s.model_id, s.sn)
    -- other == room: locked to this call already, by a gateway that died setting it up
    if other ~= room then
      if busy then
        self:transition(room, "BUSY", "UNKNOWN")
        return refuse(1, "device busy")
      end
      if not self.store:cas(dev_key(s), other, room) then -- lost a race for a stale lock
        self:transition(room, "BUSY", "UNKNOWN")
        return refuse(1, "device busy")
      end
    end
  end
  if self.worker then
    -- a start that raises must not leave the device locked to an IDLE call
    local sok, wok, werr = pcall(self.worker.start, self.worker, s)
    if not sok then wok, werr = nil, wok end
    if not wok and errors.is(werr) and werr.kind == "busy" then -- a worker pool at its limit
      self:transition(room, "BUSY", "UNKNOWN", { error = werr.message })
      return refuse(1, "busy: " .. werr.message)
    elseif not wok then
      self:transition(room, "ABORTED", "UNKNOWN", { error = werr and tostring(type(werr) == "table" and werr.message or werr) })
      return refuse(4, "call worker failed to start")
    end
  end
  if s.direction == "phone_to_device" and self.notify_device then
    local nok, nerr = pcall(self.notify_device, M.public(s))
    if not nok then
      self:transition(room, "ABORTED", "UNKNOWN", { error = tostring(nerr) })
      return refuse(5, "device could not be notified")
    end
  end
  local _, terr = self:transition(room, "CALLING")
  if terr then return refuse(-1, terr.message) end
  return refuse(0, "ok")
end

--- Handlers to plug into callback.mini_program{ handlers = ... }.
function Calls:mp_handlers()
  return { iot_voip_notify = function(msg) return self:join_voip_room(msg) end }
end

-- Events from the worker and the sides ------------------------------------------------

--- A status reported by the call worker (the SDK listener), SDK number or name.
function Calls:worker_status(room_id, status, reason)
  return self:transition(room_id, status, reason)
end

--- The worker process ended. An active call is ABORTED.
function Calls:worker_exited(room_id, why)
  local s, how = apply(self, room_id, function(cur)
    if machine.is_active(cur.state) then return "ABORTED", "UNKNOWN" end
  end, { error = why or "call worker exited" })
  if not s and how and how.reason == "no_call" then return nil end
  return s, how
end

--- Hang-up. by = "device" (the vendor side: CANCELED while ringing,
-- HANGUP_BY_CALLER when talking) or "user" (REJECTED while ringing,
-- HANGUP_BY_CALLEE when talking). The worker is told to hang up.
function Calls:hangup(room_id, by, reason)
  if by ~= "device" and by ~= "user" then error("calls:hangup: by must be 'device' or 'user'", 2) end
  local code
  -- the end state follows the state stored at the swap, not an earlier read
  local function decide(s)
    local to
    if by == "device" then to = (s.state == "TALKING") and "HANGUP_BY_CALLER" or "CANCELED"
    else to = (s.state == "TALKING") and "HANGUP_BY_CALLEE" or "REJECTED" end
    local why = reason or (to == "REJECTED" and "REJECT" or "MANUAL")
    code = machine.reasons[machine.reason(why) or "UNKNOWN"]
    return to, why
  end
  local on_swap
  if self.worker and self.worker.hangup then
    on_swap = function(s) self.worker.hangup(self.worker, s, code) end
  end
  return apply(self, room_id, decide, nil, on_swap)
end

-- What tick() ends a session with at `now`, if anything: a call still IDLE
-- after the ring timeout (its gateway died setting it up) is ABORTED.
local function overdue(self, s, now)
  local ring = s.ring_timeout or self.ring_timeout
  if s.state == "IDLE" and s.created_at and now >= s.created_at + ring then
    return "ABORTED", "UNKNOWN"
  elseif s.state == "CALLING" and s.ring_deadline and now >= s.ring_deadline then
    return "TIMEOUT", "TIMEOUT"
  elseif s.state == "TALKING" and s.time_limit and s.talk_at and now >= s.talk_at + s.time_limit then
    return "HANGUP_BY_CALLER", "TIMEOUT"
  end
end

--- Enforces the ring timeout and the maximum duration. Call it about once a
-- second (the supervisor's loop does). Returns the sessions it ended.
function Calls:tick(now)
  now = now or self.clock()
  local ended = {}
  local list, stale = scan(self)
  if not list then list, stale = {}, {} end -- the store failed: try again next tick
  for _, k in ipairs(stale) do self.store:delete(k) end
  local on_swap
  if self.worker and self.worker.hangup then
    on_swap = function(s) self.worker.hangup(self.worker, s, machine.reasons.TIMEOUT) end
  end
  for _, s in ipairs(list) do
    if overdue(self, s, now) then
      -- decided again on the stored state: an answer that landed since the
      -- listing is not hung up
      local e, how = apply(self, s.room_id, function(cur) return overdue(self, cur, now) end,
                           s.state == "IDLE" and { error = "call was never set up (gateway lost?)" } or nil, on_swap)
      if e and how ~= "unchanged" then ended[#ended + 1] = e end
    end
  end
  return ended
end

function Calls:__tostring() return "wxhw.call.Calls(" .. tostring(self.store) .. ")" end

return M

--- Callbacks from the emulated platforms to the vendor's URLs:
--   * Mini Program message push in secure mode (WXBizMsgCrypt JSON), incl. the
--     VoIP iot_voip_notify / join_voip_room event: the plaintext JSON reply's
--     errcode 0 rings, another errcode cancels; no timely answer, or one
--     without a top-level errcode (an encrypted envelope), is retransmitted
--     (3 attempts).
--   * WeCom openhw events (model_ticket, bind, unbind, verify_device) and device
--     commands (fetch_device_status, update_firmware, enter_page, exit_page,
--     remote_open_door), WeCom JSON crypt, with their reply deadlines (bind:
--     3000 ms or the bind fails; the others 1000 ms).
--   * WeChat Pay notifications: signed like responses, AES-GCM resource,
--     200/204 within 5 s or retried on the documented schedule (emulator time).
-- Signature timestamps use the wall clock (plus `skew`), like Pay responses.
local util = require "wxhw.emulator.util"
local msgcrypt = require "wxhw.msgcrypt"
local crypto = require "wxhw.crypto"
local socket = require "socket"

local M = {}
local C = {}
C.__index = C

local PAY_RETRY = { 15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600 }
-- Reply deadlines (doc 95987 bind 3000 ms; 96053 model_ticket, 95988 unbind,
-- 96130 verify_device and every device command page: 1000 ms).
local DEADLINE = { model_ticket = 1.0, bind = 3.0, unbind = 1.0, verify_device = 1.0 }

function C:wall() return math.floor(socket.gettime() + self.skew) end

function C:counters() return self.stats end
function C:openhw_url() return self.urls.openhw end

local function with_query(url, q)
  return url .. (url:find("?", 1, true) and "&" or "?") .. q
end

function C:log(entry)
  entry.time = self.emu:now()
  local l = self.entries
  l[#l + 1] = entry
  if #l > 500 then table.remove(l, 1) end
  local s = self.stats
  s[entry.kind .. "_" .. entry.outcome] = (s[entry.kind .. "_" .. entry.outcome] or 0) + 1
end

--- POST body to url; done(res | nil, err) after the reply or `timeout` seconds.
function C:post(url, body, headers, timeout, done)
  headers = headers or {}
  headers["Content-Type"] = headers["Content-Type"] or "application/json"
  self.emu.srv:request({ url = url, body = body, headers = headers, timeout = timeout }, done)
end

------------------------------------------------------------------ Mini Program push
--- Pushes `msg` (a table) in secure mode; done({outcome, attempts, status, reply_errcode}).
-- voip = true: the reply must be {"errcode":0}; non-zero cancels without retry.
function C:mp_push(msg, voip, done)
  local emu = self.emu
  local c = emu.credentials.mp
  done = done or function() end
  if not self.urls.mp then
    self:log({ kind = "mp", event = msg.Event, outcome = "no_url" })
    return done({ outcome = "no_url", attempts = 0 })
  end
  local mc = assert(msgcrypt.new{ token = c.msg_token, encoding_aes_key = c.encoding_aes_key, receive_id = c.appid })
  local plain = util.json(msg)
  local attempt = 0
  local function try()
    attempt = attempt + 1
    local ts, nonce = tostring(self:wall()), tostring(emu.rng:int(100000000, 999999999))
    local body, msg_sig = mc:push_body(plain, "mp_json", ts, nonce, c.original_id)
    local q = "signature=" .. msgcrypt.url_signature(c.msg_token, ts, nonce) .. "&timestamp=" .. ts ..
      "&nonce=" .. nonce .. "&openid=" .. util.urlencode(msg.FromUserName or "") ..
      "&encrypt_type=aes&msg_signature=" .. msg_sig
    self:post(with_query(self.urls.mp, q), body, nil, self.timeout, function(res, err)
      local entry = { kind = "mp", event = msg.Event, attempt = attempt, status = res and res.status,
        elapsed_ms = res and math.floor(res.elapsed * 1000), error = err }
      local outcome
      if res and res.status == 200 then
        local reply = res.body or ""
        local errcode = 0
        if voip then
          -- only a plaintext top-level errcode answers (cloud-server-sdk);
          -- an encrypted envelope or anything else counts as no answer
          local t = util.decode(reply)
          errcode = type(t) == "table" and math.type(t.errcode) == "integer" and t.errcode or nil
          if errcode == nil then
            entry.error = type(t) == "table" and (t.Encrypt or t.encrypt) and "encrypted reply (must be plaintext)"
              or "reply has no top-level integer errcode"
          end
        end
        entry.reply_errcode = errcode
        if errcode == 0 then outcome = voip and "ringing" or "delivered"
        elseif errcode ~= nil then outcome = "cancelled"
        end
      end
      if not outcome then outcome = attempt < 3 and "retry" or "failed" end
      entry.outcome = outcome
      self:log(entry)
      if outcome == "retry" then
        emu.srv:after(err and err ~= "timeout" and 1 or 0, try)
      else
        done({ outcome = outcome, attempts = attempt, status = entry.status, reply_errcode = entry.reply_errcode })
      end
    end)
  end
  try()
end

--- The join_voip_room event for a call (server-initiated or device-initiated).
function C:voip_notify(call, done)
  local emu = self.emu
  self:mp_push({ ToUserName = emu.credentials.mp.original_id, FromUserName = call.openid,
    CreateTime = math.floor(emu:now()), MsgType = "event", Event = "iot_voip_notify", Action = "join_voip_room",
    Payload = call.Payload, RoomId = call.RoomId, SessionKey = call.SessionKey, ServerToken = call.ServerToken,
    ModelId = call.ModelId, Sn = call.Sn }, true, function(r)
      call.status = r.outcome
      if done then done(r) end
    end)
end

------------------------------------------------------------------ WeCom openhw
--- done(ok, why) with ok = the vendor accepted within the event's deadline.
function C:openhw_event(event_type, event, base_extra, done)
  return self:openhw_push("event", event_type, event, { base = base_extra }, done)
end

-- The vendor's answer to an event or command: empty or "success" accepts,
-- an encrypted {"errcode":N} refuses when N ~= 0 (bind, doc 95987; the same
-- reading for the device commands, whose pages give only the 1000 ms limit).
-- The WeCom JSON passive reply {"encrypt","msgsignature","timestamp","nonce"},
-- its timestamp a JSON string as both official WeCom SDKs write it (the
-- strictest reading: a number is refused) -> the decrypted text | nil, why.
local function open_reply(mc, t)
  if type(t.timestamp) ~= "string" then
    return nil, "reply timestamp must be a JSON string (as the official WeCom SDKs write it)"
  end
  local inner, derr = mc:decrypt(t.msgsignature, t.timestamp, t.nonce, t.encrypt)
  if not inner then return nil, "reply does not decrypt: " .. tostring(derr) end
  return inner
end

local function accept_or_refuse(mc, reply)
  if reply == "" or reply == "success" then return true end
  local t, why = util.decode(reply), nil
  if type(t) == "table" and t.encrypt then
    local inner
    inner, why = open_reply(mc, t)
    t = inner and util.decode(inner) or nil
  end
  local code = type(t) == "table" and math.tointeger(t.errcode)
  if code == 0 then return true, nil, code end
  if code then return false, "vendor refused with errcode " .. code .. (t.errmsg and (" " .. t.errmsg) or ""), code end
  return false, why or "unreadable reply"
end

-- verify_device's answer {"is_valid":bool,"modelid":"…"} travels encrypted
-- like the push (doc 96130); a plaintext answer is not one.
local function encrypted_object(mc, reply)
  local t = util.decode(reply)
  if type(t) ~= "table" or not t.encrypt then return nil, "reply must be the encrypted JSON answer" end
  local inner, why = open_reply(mc, t)
  if not inner then return nil, why end
  local v = util.decode(inner)
  if type(v) ~= "table" then return nil, "decrypted reply is not a JSON object" end
  return v
end

--- Pushes one openhw message, msg_type "event" (event.event_type) or
-- "command" (command.command_type), within its deadline. o: base (extra
-- base_info fields), no_model (verify_device's base_info has no model_id),
-- answer = "object" (the encrypted JSON answer is returned to done).
-- done(ok, why, answer).
function C:openhw_push(msg_type, type_name, fields, o, done)
  local emu = self.emu
  local c = emu.credentials.openhw
  done = done or function() end
  if not self.urls.openhw then
    self:log({ kind = "openhw", event = type_name, outcome = "no_url" })
    return done(true)
  end
  local mc = assert(msgcrypt.new{ token = c.callback_token, encoding_aes_key = c.encoding_aes_key,
    receive_id = c.service_corpid })
  local base = { req_id = "req" .. emu:next_seq() .. emu.rng:alnum(8), createtime = math.floor(emu:now()),
    model_id = not o.no_model and c.model_id or nil, service_corpid = c.service_corpid }
  for k, v in pairs(o.base or {}) do base[k] = v end
  local node = { [msg_type .. "_type"] = type_name }
  for k, v in pairs(fields or {}) do node[k] = v end
  local plain = util.json({ msg_type = msg_type, base_info = base, [msg_type] = node })
  local ts, nonce = tostring(self:wall()), tostring(emu.rng:int(100000000, 999999999))
  local body, sig = mc:push_body(plain, "wecom_json", ts, nonce, c.service_corpid)
  local q = "msg_signature=" .. sig .. "&timestamp=" .. ts .. "&nonce=" .. nonce
  local deadline = DEADLINE[type_name] or 1.0
  self:post(with_query(self.urls.openhw, q), body, nil, deadline, function(res, err)
    local entry = { kind = "openhw", event = type_name, status = res and res.status, error = err,
      elapsed_ms = res and math.floor(res.elapsed * 1000) }
    local ok, why, answer = false, err, nil
    if res and res.status == 200 then
      local reply = (res.body or ""):match("^%s*(.-)%s*$")
      if o.answer == "object" then
        answer, why = encrypted_object(mc, reply)
        ok = answer ~= nil
      else
        ok, why, entry.reply_errcode = accept_or_refuse(mc, reply)
      end
    elseif res then
      why = "HTTP " .. tostring(res.status)
    end
    if ok and res.elapsed > deadline then ok, why = false, "reply after the deadline" end
    entry.outcome = ok and "delivered" or "failed"
    entry.reason = not ok and why or nil
    self:log(entry)
    done(ok, why, answer)
  end)
end

------------------------------------------------------------------ WeChat Pay
function C:pay_notify(opts, done)
  local emu = self.emu
  local pay = emu.pay
  done = done or function() end
  if not self.urls.pay then return done({ outcome = "no_url", attempts = 0 }) end
  local resource_plain = opts.resource or { mchid = pay.mchid, out_trade_no = "EMU" .. emu:next_seq(),
    trade_state = "SUCCESS", amount = { total = 1, currency = "CNY" } }
  local nonce = emu.rng:alnum(12)
  local aad = opts.associated_data or "transaction"
  local ct = crypto.aes_gcm_encrypt(pay.apiv3_key, nonce, aad,
    type(resource_plain) == "string" and resource_plain or util.json(resource_plain))
  local id = string.format("%08x-%04x-%04x-%04x-%012x", emu.rng:int(0, 0xffffffff), emu.rng:int(0, 0xffff),
    emu.rng:int(0, 0xffff), emu.rng:int(0, 0xffff), emu.rng:int(0, 0xffffffffffff))
  local body = util.json({ id = id, create_time = os.date("!%Y-%m-%dT%H:%M:%S+08:00", math.floor(emu:now()) + 8 * 3600),
    resource_type = "encrypt-resource", event_type = opts.event_type or "TRANSACTION.SUCCESS",
    summary = opts.summary or "支付成功", resource = { original_type = opts.original_type or "transaction",
      algorithm = "AEAD_AES_256_GCM", ciphertext = crypto.base64_encode(ct), associated_data = aad, nonce = nonce } })
  local n = { id = id, body = body, attempt = 0, fault = { bad_signature = opts.bad_signature, signtest = opts.signtest },
    serial = opts.wechatpay_serial }
  local first = true
  local function try()
    n.attempt = n.attempt + 1
    -- each attempt is signed afresh with the current time
    local fake_req = { headers = { ["wechatpay-serial"] = n.serial }, fault = n.fault, request_id = id }
    local signed = pay:sign_response(fake_req, { body = body, headers = {} })
    signed.headers["Request-ID"] = nil
    self:post(self.urls.pay, body, signed.headers, 5, function(res, err)
      local ok = res and (res.status == 200 or res.status == 204) and res.elapsed <= 5
      local entry = { kind = "pay", event = opts.event_type or "TRANSACTION.SUCCESS", id = id, attempt = n.attempt,
        status = res and res.status, error = err, elapsed_ms = res and math.floor(res.elapsed * 1000),
        outcome = ok and "delivered" or (n.attempt <= #PAY_RETRY and "retry" or "failed") }
      self:log(entry)
      if entry.outcome == "retry" then
        n.due = emu:now() + PAY_RETRY[n.attempt]
        self.pay_pending[id] = n
      else
        self.pay_pending[id] = nil
      end
      if first then first = false; done({ outcome = entry.outcome, attempts = n.attempt, status = entry.status, id = id }) end
    end)
  end
  n.try = try
  try()
end

function C:tick()
  local now = self.emu:now()
  for id, n in pairs(self.pay_pending) do
    if n.due and now >= n.due and self.urls.pay then
      n.due = nil
      self.pay_pending[id] = nil
      n.try()
    end
  end
end

------------------------------------------------------------------ URL verification
--- What the admin console does when a push URL is saved: a GET the vendor
-- must answer with the echostr (Mini Program: verbatim; WeCom: decrypted).
function C:verify_url(kind, done)
  local emu = self.emu
  local url = self.urls[kind]
  if not url then return done({ ok = false, reason = "no " .. kind .. "_url configured" }) end
  local ts, nonce = tostring(self:wall()), tostring(emu.rng:int(100000000, 999999999))
  local q, expect
  if kind == "mp" then
    local c = emu.credentials.mp
    expect = tostring(emu.rng:int(1000000000, 9999999999)) .. tostring(emu.rng:int(100000000, 999999999))
    q = "signature=" .. msgcrypt.url_signature(c.msg_token, ts, nonce) .. "&timestamp=" .. ts ..
      "&nonce=" .. nonce .. "&echostr=" .. expect
  else
    local c = emu.credentials.openhw
    local mc = assert(msgcrypt.new{ token = c.callback_token, encoding_aes_key = c.encoding_aes_key,
      receive_id = c.service_corpid })
    expect = emu.rng:alnum(20)
    local enc, sig = mc:encrypt(expect, ts, nonce)
    q = "msg_signature=" .. sig .. "&timestamp=" .. ts .. "&nonce=" .. nonce .. "&echostr=" .. util.urlencode(enc)
  end
  self.emu.srv:request({ url = with_query(url, q), method = "GET", timeout = self.timeout }, function(res, err)
    local ok = res and res.status == 200 and (res.body or ""):match("^%s*(.-)%s*$") == expect
    local entry = { kind = kind, event = "verify_url", status = res and res.status, error = err,
      outcome = ok and "delivered" or "failed" }
    self:log(entry)
    done({ ok = ok and true or false, status = res and res.status,
      reason = not ok and (err or "the answer was not the echostr") or nil })
  end)
end

------------------------------------------------------------------ control
local function deferred(fn)
  return function(emu, req, b)
    return { defer = function(reply)
      fn(emu, b, function(r) reply(emu:json(r)) end, req)
    end }
  end
end

local function control_routes(emu)
  local r = emu.control_routes
  r["POST /__emulator/callbacks"] = function(_, _, b)
    local self = emu.callbacks
    for _, k in ipairs{ "mp", "openhw", "pay" } do
      local v = b[k .. "_url"]
      if v ~= nil then
        if v ~= "" and (type(v) ~= "string" or not v:match("^http://")) then
          return nil, k .. "_url must be an http:// URL or \"\""
        end
        self.urls[k] = v ~= "" and v or nil
      end
    end
    if type(b.timeout_ms) == "number" then self.timeout = b.timeout_ms / 1000 end
    if type(b.skew) == "number" then self.skew = b.skew end
    return { ok = true, mp_url = self.urls.mp, openhw_url = self.urls.openhw, pay_url = self.urls.pay }
  end
  r["GET /__emulator/callbacks"] = function()
    local self = emu.callbacks
    local pending = util.array()
    for id, n in pairs(self.pay_pending) do pending[#pending + 1] = { id = id, attempt = n.attempt, due = n.due } end
    return { mp_url = self.urls.mp, openhw_url = self.urls.openhw, pay_url = self.urls.pay,
      log = util.array(self.entries), pay_pending = pending, stats = self.stats }
  end
  r["POST /__emulator/callbacks/mp/push"] = deferred(function(_, b, reply)
    if type(b.message) ~= "table" then return reply({ error = "need message (the plaintext event object)" }) end
    emu.callbacks:mp_push(b.message, b.voip == true, reply)
  end)
  -- A device-initiated call reaching the vendor cloud (wx_cloudvoip_client_call).
  r["POST /__emulator/callbacks/mp/voip"] = deferred(function(_, b, reply)
    local call = { RoomId = b.roomid or ("wxf830863afde621ebWmpfVoip" .. emu:next_seq() .. emu.rng:int(100000000, 999999999)),
      SessionKey = emu.rng:alnum(32), ServerToken = emu.rng:alnum(44), Payload = b.payload or "",
      ModelId = b.model_id or emu.credentials.mp.model_id, Sn = b.sn or "emu-device-1", openid = b.openid or "oEmuUser" }
    emu.callbacks:voip_notify(call, function(res)
      res.roomid = call.RoomId; res.server_token = call.ServerToken; res.session_key = call.SessionKey
      reply(res)
    end)
  end)
  r["POST /__emulator/callbacks/openhw/model_ticket"] = deferred(function(_, _, reply)
    local t = emu.wecom:new_ticket()
    emu.callbacks:openhw_event("model_ticket", { model_ticket = t }, nil, function(ok, why)
      reply({ ok = ok, reason = why, model_ticket = t })
    end)
  end)
  r["POST /__emulator/callbacks/mp/verify_url"] = deferred(function(_, _, reply)
    emu.callbacks:verify_url("mp", reply)
  end)
  r["POST /__emulator/callbacks/openhw/verify_url"] = deferred(function(_, _, reply)
    emu.callbacks:verify_url("openhw", reply)
  end)
  r["POST /__emulator/callbacks/pay/notify"] = deferred(function(_, b, reply)
    emu.callbacks:pay_notify(b, reply)
  end)
end

-- Reset forgets deliveries; the URLs and timeouts (configuration) stay.
function C:reset()
  self.entries, self.stats, self.pay_pending = {}, {}, {}
end

function M.install(emu)
  local self = setmetatable({ emu = emu, urls = {}, timeout = 5, skew = 0 }, C)
  self:reset()
  control_routes(emu)
  return self
end

return M

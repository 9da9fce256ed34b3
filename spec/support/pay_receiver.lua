-- Child process for spec/pay_notify_spec.lua: a plain HTTP endpoint that
-- hands each POST to pay:notification(headers, raw_body) and answers 204, or
-- 401 with the reason, as a merchant's callback should. Each outcome is
-- appended to OUT as a JSON line. Prints "READY <port>" when listening.
--   lua pay_receiver.lua EMULATOR_BASE_URL OUT
local socket = require "socket"
local cjson = require "cjson"
local pay_mod = require "wxhw.pay"

local base, out = arg[1], arg[2]
local shttp = require "socket.http"
local c = cjson.decode((assert(shttp.request(base .. "/__emulator/credentials")))).pay
local pay = assert(pay_mod.new{ mchid = c.mchid, serial_no = c.merchant_serial_no, private_key = c.merchant_private_key,
  apiv3_key = c.apiv3_key, base_url = base, platform_public_key = c.platform_public_key,
  platform_public_key_id = c.public_key_id, platform_certificates = { c.platform_certificate } })

local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
io.stdout:write("READY ", port, "\n")
io.stdout:flush()

local function record(t)
  local f = assert(io.open(out, "a"))
  f:write(cjson.encode(t), "\n")
  f:close()
end

while true do
  local conn = srv:accept()
  conn:settimeout(5)
  local line = conn:receive("*l")
  local headers, len = {}, 0
  while true do
    local h = conn:receive("*l")
    if not h or h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  len = tonumber(headers["content-length"] or "0") or 0
  local body = len > 0 and conn:receive(len) or ""
  local status = 204
  if line and line:match("^POST") then
    local ev, err = pay:notification(headers, body)
    if ev then
      record({ ok = true, event_type = ev.event_type, out_trade_no = ev.data and ev.data.out_trade_no, id = ev.id })
    else
      status = 401
      record({ ok = false, reason = err.reason, kind = err.kind })
    end
  end
  local reply = status == 204 and "" or '{"code":"FAIL","message":"signature"}'
  conn:send(("HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"):format(status,
    status == 204 and "No Content" or "Unauthorized", #reply, reply))
  conn:close()
end

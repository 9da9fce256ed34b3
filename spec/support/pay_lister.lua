-- Child process for spec/pay_limiter_spec.lua: lists `pages` pages of the
-- emulator's devices with a Redis-shared limiter (or an in-process one when
-- no port is given) and prints "RESULT <devices> <429s> <seconds>".
--   lua pay_lister.lua BASE_URL PAGES OFFSET [REDIS_PORT]
local pay_mod = require "wxhw.pay"
local limiter = require "wxhw.pay.limiter"
local cjson = require "cjson"
local socket = require "socket"
local shttp = require "socket.http"

local base, pages, offset, redis_port = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
local start_at = tonumber(arg[5]) -- absolute time (socket.gettime) to start listing at
local c = cjson.decode((assert(shttp.request(base .. "/__emulator/credentials")))).pay
local lim
if redis_port then lim = assert(limiter.shared{ host = "127.0.0.1", port = redis_port, prefix = "spec:" }) end
local p = assert(pay_mod.new{ mchid = c.mchid, serial_no = c.merchant_serial_no, private_key = c.merchant_private_key,
  platform_public_key = c.platform_public_key, platform_public_key_id = c.public_key_id, base_url = base,
  limiter = lim, retry = { attempts = 8, base_delay = 0.05 } })
local n429 = 0
p.client:hook("on_response", function(i) if i.status == 429 then n429 = n429 + 1 end end)
-- start together: at the time the caller gave (two processes set up at
-- different speeds on a loaded machine), else at the next whole second
start_at = start_at or math.ceil(socket.gettime()) + 0.05
if start_at > socket.gettime() then socket.sleep(start_at - socket.gettime()) end
local t0, n = socket.gettime(), 0
local it = p:iot_devices{ limit = 100, offset = offset }
for d, err in it do
  if d == false then io.stderr:write(tostring(err), "\n"); os.exit(1) end
  n = n + 1
  if n >= pages * 100 then break end
end
print(string.format("RESULT %d %d %.3f", n, n429, socket.gettime() - t0))

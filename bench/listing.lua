-- Helper of bench/listing: lists the emulator's whole fleet through
-- wxhw.pay and prints "devices pages seconds n429".
local pay_mod = require "wxhw.pay"
local http = require "wxhw.http"
local cjson = require "cjson"
local socket = require "socket"
local base, concurrency = arg[1], tonumber(arg[2]) or 1

local h = assert(http.new{})
local c = cjson.decode(assert(h:request{ url = base .. "/__emulator/credentials" }).body).pay
h:close()
local pay = assert(pay_mod.new{ mchid = c.mchid, serial_no = c.merchant_serial_no, private_key = c.merchant_private_key,
  apiv3_key = c.apiv3_key, base_url = base })
assert(pay:ensure_certificates()) -- the certificate download is not part of the listing
local n429, pages = 0, 0
pay.client:hook("on_response", function(i)
  if i.status == 429 then n429 = n429 + 1 end
  if i.path == "/v3/iotmanage/devices" then pages = pages + 1 end
end)
local t0, n = socket.gettime(), 0
local it = pay:iot_devices{ limit = 100, concurrency = concurrency }
for d, err in it do
  if d == false then io.stderr:write(tostring(err), "\n"); os.exit(1) end
  n = n + 1
end
print(string.format("%d %d %.3f %d", n, pages, socket.gettime() - t0, n429))

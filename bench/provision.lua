-- Driver for bench/provision: provisions a CSV on WMPF against a running
-- emulator and prints "devices wall cpu sign_us rss_kb sign_per_s" on one line.
--   lua5.4 bench/provision.lua BASE_URL devices.csv workdir sign_seconds
local base_url, csv, dir, sign_secs = arg[1], arg[2], arg[3], tonumber(arg[4] or "2")
local cjson = require "cjson.safe"
local clock = require "wxhw.clock"
local crypto = require "wxhw.crypto"
local wmpf = require "wxhw.wmpf"
local client = require "wxhw.client"
local token = require "wxhw.token"
local provision = require "wxhw.provision"

local function get(path)
  local c = assert(client.new{})
  local res = assert(c.transport:request{ method = "GET", url = base_url .. path })
  return cjson.decode(res.body)
end

-- ECDSA signatures per second through the same call provisioning makes.
local key = crypto.generate_ec_key()
local n, t0 = 0, clock.monotonic()
local c0 = os.clock()
repeat
  for i = 1, 200 do wmpf.device_signature(key, "4000000000000001", "DEV" .. i) end
  n = n + 200
until clock.monotonic() - t0 >= sign_secs
-- CPU time, as `openssl speed` measures by default (the machine is shared)
local sign_cpu = (os.clock() - c0) / n
local sign_rate = 1 / sign_cpu

local cr = get("/__emulator/credentials")
local mgr = token.new{ source = "stable_token", appid = cr.host_app.appid, secret = cr.host_app.secret,
  base_url = base_url, store = "memory" }
local w = wmpf.new(assert(client.new{ base_urls = { wmpf = base_url }, token_provider = mgr }))
local job = provision.new{ input = csv, product = "Bench", wmpf = true, out = dir .. "/manifest.csv",
  state_dir = dir .. "/state", batch = 100 }
job.steps = provision.api_steps{ wmpf = w, model_name = "BenchModel" }
collectgarbage("collect")
local cpu0, wall0 = os.clock(), clock.monotonic()
local sum = assert(job:run())
local wall, cpu = clock.monotonic() - wall0, os.clock() - cpu0
local rss = 0
for line in io.lines("/proc/self/status") do
  local v = line:match("^VmHWM:%s+(%d+)")
  if v then rss = tonumber(v) end
end
assert(sum.ok == sum.rows, "not every device was provisioned")
print(string.format("%d %.3f %.3f %.3f %d %.0f", sum.ok, wall, cpu, sign_cpu * 1e6, rss, sign_rate))

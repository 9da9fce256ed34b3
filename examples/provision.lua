-- Provision a device list from Lua against the built-in emulator (after `make`):
--   lua5.4 bin/wxhw emulator --port 8870 &      (or any running emulator)
--   lua5.4 examples/provision.lua [BASE_URL [OUT_DIR [DEVICES.csv]]]
-- BASE_URL defaults to http://127.0.0.1:8870. Everything it writes (the
-- manifest, its journal, the product record with its private key and, without
-- DEVICES.csv, a generated list of 120 lamps) goes into OUT_DIR, by default
-- build/examples/provision of this checkout (`make clean` removes it); run it
-- again and it finds the job complete.
local examples = dofile((arg[0]:match("^(.*)/") or ".") .. "/paths.lua")
local wxhw = require "wxhw"
local cjson = require "cjson"

local base_url, input = arg[1] or "http://127.0.0.1:8870", arg[3]
local out_dir = examples.dir("provision", arg[2])
if not input then -- a small list to play with
  input = out_dir .. "/lamps.csv"
  local f = assert(io.open(input, "w"))
  f:write("device_id,sn\n")
  for i = 1, 120 do f:write(("LAMP%05d,LAMP%05d\n"):format(i, i)) end
  f:close()
end

-- the emulator tells its test credentials; a real deployment reads its own
local t = assert(require("wxhw.transport").new{})
local creds = cjson.decode(assert(t:request{ method = "GET", url = base_url .. "/__emulator/credentials" }).body)
local ticket = cjson.decode(assert(t:request{ method = "GET", url = base_url .. "/__emulator/openhw/model_ticket" }).body).model_ticket
local urls = { mp = base_url, wmpf = base_url, wecom = base_url }
-- the host (mobile) app's token comes from GET /cgi-bin/token (source "wmpf");
-- in production keep it in the default store every process of the host shares
local function client_for(app, source)
  return assert(wxhw.client.new{ base_urls = urls, token_provider = wxhw.token.new{ source = source or "stable_token",
    appid = app.appid, secret = app.secret, base_url = base_url, store = "memory" } })
end

local job = wxhw.provision.new{ input = input, product = "ExampleLamp", wmpf = true, groups = true, wecom = true,
  out = out_dir .. "/manifest.csv", state_dir = out_dir .. "/state", resume = true, appid = creds.mp.appid }
job.steps = wxhw.provision.api_steps{
  wmpf = wxhw.wmpf.new(client_for(creds.host_app, "wmpf")),
  mp = wxhw.mp.new(client_for(creds.mp), { model_id = creds.mp.model_id }),
  wecom = wxhw.wecom.new{ client = assert(wxhw.client.new{ base_urls = urls }), model_id = creds.openhw.model_id,
    model_secret = creds.openhw.model_secret, model_ticket = ticket },
  model_id = creds.mp.model_id,
  model_name = "ExampleLampModel" } -- the WMPF model registered on the WeChat terminal cooperation platform

local plan = assert(job:plan())
print(("plan: %d devices in %d batches, %d invalid rows"):format(plan.devices, plan.batches, plan.invalid))
local summary = assert(job:run())
print(("done: %d ok, %d failed, %d invalid; product_id %s key_version %s; manifest %s"):format(
  summary.ok or 0, summary.failed or 0, summary.invalid or 0, tostring(summary.product_id),
  tostring(summary.key_version), summary.manifest))

-- A REPL walk-through against the built-in emulator, after `make`:
--   lua5.4 bin/wxhw emulator --port 8870 &
--   lua5.4 -i examples/repl.lua            (then keep typing at the > prompt)
-- WXHW_EMULATOR=URL points it at another emulator. Everything below also works
-- line by line at the prompt. Its only file is the token store, in
-- build/examples/ of this checkout (`make clean` removes it).
local examples = dofile((arg[0]:match("^(.*)/") or ".") .. "/paths.lua")
wxhw = require "wxhw"
local cjson = require "cjson"

base_url = os.getenv("WXHW_EMULATOR") or "http://127.0.0.1:8870"
local t = assert(require("wxhw.transport").new{})
local res, err = t:request{ method = "GET", url = base_url .. "/__emulator/credentials" }
if not res then error("no emulator at " .. base_url .. " (" .. tostring(err) .. "); start one first") end
creds = cjson.decode(res.body)

-- a token manager with an shm store every process on the host can share (in
-- production leave store_path out: the host's default store), and a client
tokens = wxhw.token.new{ source = "stable_token", appid = creds.mp.appid, secret = creds.mp.secret,
  base_url = base_url, store_path = examples.dir("repl") .. "/tokens" }
client = wxhw.client.new{ base_urls = { mp = base_url }, token_provider = tokens }
mp = wxhw.mp.new(client, { model_id = creds.mp.model_id })

print(tokens)                                   -- key, expiry, age: never the token
print(mp:sn_ticket{ sn = "SN2026LAMP000001" })  -- a 5-minute snTicket for wx.requestDeviceVoIP
print(mp:sn_ticket{ sn = "bad sn!" })           -- nil + a local error: sn rules are checked before sending

key = wxhw.crypto.generate_ec_key()
print(key)                                      -- wxhw.Key: EC P-256 256-bit private key
print(wxhw.wmpf.device_signature(key, 6365, "SN2026LAMP000001"))

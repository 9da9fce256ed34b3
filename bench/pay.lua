-- Helper of bench/pay: Authorization headers/s and response verifications/s
-- of wxhw.pay (key parsed once), printed as "auth verify raw_verify".
local pay_mod = require "wxhw.pay"
local crypto = require "wxhw.crypto"
local bench = require "benchlib"
local merchant_path, platform_path, secs = arg[1], arg[2], tonumber(arg[3]) or 3

local read = bench.read

local platform = assert(crypto.private_key(read(platform_path)))
local pay = assert(pay_mod.new{ mchid = "1900000001", serial_no = "3775B6A45ACD588826D15E583A95F5DD2E8B3B41",
  private_key = read(merchant_path), platform_public_key = platform:public_pem(),
  platform_public_key_id = "PUB_KEY_ID_0000000000000024101100397200000006" })

local function rate(fn) return bench.rate(fn, secs) end

-- as a real request: fresh timestamp and nonce, path with its query
local url = "/v3/iotmanage/devices?limit=100&offset=0"
local auth = rate(function() return pay:authorization("GET", url, "") end)

local body = '{"data":[],"offset":0,"limit":100,"total_count":0,"links":{"next":"","prev":"","self":""}}'
local ts, nonce = tostring(os.time()), crypto.nonce(32)
local headers = { ["wechatpay-timestamp"] = ts, ["wechatpay-nonce"] = nonce,
  ["wechatpay-signature"] = crypto.base64_encode(platform:sign(ts .. "\n" .. nonce .. "\n" .. body .. "\n")),
  ["wechatpay-serial"] = "PUB_KEY_ID_0000000000000024101100397200000006",
  ["wechatpay-signature-type"] = "WECHATPAY2-SHA256-RSA2048", ["request-id"] = "08F78BB5AF0610D302" }
assert(pay:verify(headers, body))
local ver = rate(function() assert(pay:verify(headers, body)) end)
-- the primitive alone (hash + EVP verify of the same message), to show what
-- the Pay layer itself costs
local pub, msg = platform:public_key(), ts .. "\n" .. nonce .. "\n" .. body .. "\n"
local sig = crypto.base64_decode(headers["wechatpay-signature"])
local raw = rate(function() pub:verify(msg, sig) end)
print(string.format("%.1f %.1f %.1f", auth, ver, raw))

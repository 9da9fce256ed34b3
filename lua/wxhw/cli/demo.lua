--- `wxhw demo`: a short tour of the primitives, offline.
local crypto = require "wxhw.crypto"
local msgcrypt = require "wxhw.msgcrypt"
local wmpf = require "wxhw.wmpf"

local cli_args = require "wxhw.cli.args"

local M = {}

M.usage = [[
usage: wxhw demo
  A short offline tour: a WeChat Pay APIv3 request signature, a WMPF device
  signature and the published Mini Program secure-mode push, decrypted.]]

function M.run(args)
  local o, pos = cli_args.parse(args or {}, { flags = { help = true }, values = {} })
  if o and o.help then print(M.usage); return 0 end
  if o and #pos > 0 then o, pos = nil, "unexpected argument '" .. pos[1] .. "'" end
  if not o then io.stderr:write("wxhw demo: ", pos, "\n", M.usage, "\n"); return 2 end
  print("wxhw " .. require("wxhw").version .. " — primitives demo (offline)\n")

  -- 1. A WeChat Pay APIv3 Authorization header (merchant key made on the spot).
  local merchant = crypto.generate_rsa_key(2048)
  local ts, nonce = os.time(), crypto.nonce(32)
  local url = "/v3/iotmanage/devices?limit=100&offset=0"
  local message = "GET\n" .. url .. "\n" .. ts .. "\n" .. nonce .. "\n\n"
  local signature = crypto.base64_encode(merchant:sign(message))
  print("1. WeChat Pay APIv3 request signature for GET " .. url)
  print(string.format('   Authorization: WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="%s",' ..
    'timestamp="%d",serial_no="DEMO",signature="%s…"', nonce, ts, signature:sub(1, 24)))
  print("   verifies with the merchant public key: " .. tostring(merchant:public_key():verify(message, crypto.base64_decode(signature))))

  -- 2. A WMPF device signature, as flashed at the factory.
  local device_key = crypto.generate_ec_key()
  local sig = wmpf.device_signature(device_key, 6365, "640122050524")
  print("\n2. WMPF device signature for product 6365, device 640122050524 (ECDSA P-256)")
  print("   signature: " .. sig)
  print("   " .. tostring(device_key))

  -- 3. The published Mini Program secure-mode push, decrypted.
  local mc = assert(msgcrypt.new{ token = "AAAAA", encoding_aes_key = string.rep("A", 43), receive_id = "wxba5fad812f8e6fb9" })
  local enc = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
  local msg, err = mc:decrypt("046e02f8204d34f8ba5fa3b1db94908f3df2e9b3", "1714112445", "415670741", enc)
  print("\n3. Mini Program message push (published vector), verified and decrypted:")
  print("   " .. (msg or tostring(err)))
  local tampered, terr = mc:decrypt("046e02f8204d34f8ba5fa3b1db94908f3df2e9b3", "1714112446", "415670741", enc)
  print("   with a changed timestamp: " .. tostring(tampered) .. ", " .. tostring(terr))
  return msg and 0 or 1
end

return M

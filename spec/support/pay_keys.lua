-- Key material for Pay specs, made with the OpenSSL CLI: a merchant key, two
-- platform certificates (known serials) and a WeChat Pay public key, plus a
-- "WeChat side" that signs answers and notifications with them.
local ossl = require "support.openssl"
local crypto = require "wxhw.crypto"

local M = {}

M.MCHID = "1900000001"
M.SERIAL = "3775B6A45ACD588826D15E583A95F5DD2E8B3B41"
M.APIV3 = "0123456789abcdefABCDEF0123456789"
M.PUB_KEY_ID = "PUB_KEY_ID_0000000000000024101100397200000006"
M.CERT1 = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
M.CERT2 = "6A9E1D4C2B3F5A7E8D0C1B2A3F4E5D6C7B8A9F0E"

function M.make()
  local dir = ossl.tmpdir()
  local k = { dir = dir }
  k.merchant_path, k.merchant_pub_path = ossl.genkey(dir, "rsa2048", "merchant")
  k.platform_path = ossl.genkey(dir, "rsa2048", "platform")
  k.platform2_path = ossl.genkey(dir, "rsa2048", "platform2")
  k.pubkey_path, k.pubkey_pub_path = ossl.genkey(dir, "rsa2048", "wxpubkey")
  k.ec_path = ossl.genkey(dir, "ec", "ec")
  k.cert1_path = ossl.selfsigned(dir, k.platform_path, M.CERT1:lower(), "cert1")
  k.cert2_path = ossl.selfsigned(dir, k.platform2_path, M.CERT2:lower(), "cert2")
  k.merchant_pem = ossl.read(k.merchant_path)
  k.cert1_pem = ossl.read(k.cert1_path)
  k.cert2_pem = ossl.read(k.cert2_path)
  k.pubkey_pem = ossl.read(k.pubkey_pub_path)
  k.ec_pem = ossl.read(k.ec_path)
  k.platform = assert(crypto.private_key(ossl.read(k.platform_path)))
  k.platform2 = assert(crypto.private_key(ossl.read(k.platform2_path)))
  k.wxpub = assert(crypto.private_key(ossl.read(k.pubkey_path)))
  function k.cleanup() ossl.rmtree(dir) end
  return k
end

--- Headers WeChat Pay would send with `body`, signed by `key` under `serial`.
function M.signed_headers(key, serial, body, ts, nonce)
  ts = ts or os.time()
  nonce = nonce or crypto.nonce(32)
  local sig = crypto.base64_encode(key:sign(ts .. "\n" .. nonce .. "\n" .. body .. "\n"))
  return {
    ["Wechatpay-Timestamp"] = tostring(ts), ["Wechatpay-Nonce"] = nonce, ["Wechatpay-Signature"] = sig,
    ["Wechatpay-Serial"] = serial, ["Wechatpay-Signature-Type"] = "WECHATPAY2-SHA256-RSA2048",
    ["Request-ID"] = "08F78BB5AF0610D302",
  }
end

return M

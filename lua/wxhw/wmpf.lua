--- WMPF (Mini Program hardware framework) runtime management.
-- See docs/wmpf.md and wechat-api.md §2.5.
local crypto = require "wxhw.crypto"

local M = {}

--- The signature a WMPF device presents at activation: ECDSA P-256 over
-- SHA-256 of "<productId>_<deviceId>", base64 of the DER signature on one line.
-- `key` is a wxhw.Key (EC P-256) or a PEM string.
function M.device_signature(key, product_id, device_id)
  if type(key) == "string" then
    local k, err = crypto.private_key(key)
    if not k then return nil, err end
    key = k
  end
  if key:type() ~= "ec" then error("device_signature: EC P-256 private key required", 2) end
  if product_id == nil or device_id == nil then error("device_signature: product_id and device_id required", 2) end
  local pid = type(product_id) == "number" and string.format("%d", product_id) or tostring(product_id)
  return crypto.base64_encode(key:sign(pid .. "_" .. tostring(device_id)))
end

return M

--- Contract: WeChat Pay APIv3 (pay.weixin.qq.com; sources per entry). Data only; see
-- contract/init.lua. Every request is authenticated first (Authorization,
-- User-Agent); errors are HTTP statuses with a signed {code, message}.
local AUTH = { where = "header", says = "Authorization: WECHATPAY2-SHA256-RSA2048 (merchant key), User-Agent" }
local PAY_ERRORS = { PARAM_ERROR = "400", SIGN_ERROR = "401", METHOD_NOT_ALLOWED = "405",
  FREQUENCY_LIMITED = "429", SYSTEM_ERROR = "500" }
local function errors(extra)
  local t = {}
  for k, v in pairs(PAY_ERRORS) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

return {
  {
    method = "GET", path = "/v3/certificates", token = AUTH, style = "pay", err = "PARAM_ERROR",
    source = "wechatpay-apiv3/wechatpay-go core/downloader (official SDK); https://pay.weixin.qq.com/wiki/doc/apiv3/apis/wechatpay5_1.shtml",
    response = { { "data", "array", items = { type = "object", fields = {
      { "serial_no", "string" }, { "effective_time", "string" }, { "expire_time", "string" },
      { "encrypt_certificate", "object", fields = { { "algorithm", "string" }, { "nonce", "string" },
        { "associated_data", "string" }, { "ciphertext", "string" } } } } } } },
    errcodes = errors(),
  },
  {
    method = "GET", path = "/v3/iotmanage/devices", token = AUTH, style = "pay", err = "PARAM_ERROR",
    source = "https://pay.weixin.qq.com/wiki/doc/wxfacepay/develop/point/iotmanage-devices.html",
    qps = 20,
    query = { { "offset", "uint", req = true, src = "uint64, required (iotmanage-devices)" },
      { "limit", "uint", req = true, least = 1, most = 100, src = "uint64, required, at most 100 (iotmanage-devices)" } },
    response = { { "data", "array", items = { type = "object", fields = {
      { "device_sn", "string" }, { "camera_sn", "string" }, { "device_category_code", "string" },
      { "device_category", "string" }, { "device_class_code", "string" }, { "device_class", "string" },
      { "device_model", "string" }, { "app_scene_code", "string" }, { "app_scene", "string" },
      { "operating_system", "string" }, { "activation_status", "string" }, { "activation_time", "string" },
      { "mchid", "string" }, { "merchant_shortname", "string" }, { "sub_mchid", "string" },
      { "sub_merchant_shortname", "string" } } } },
      { "offset", "integer" }, { "limit", "integer" }, { "total_count", "integer" },
      { "links", "object", fields = { { "next", "string" }, { "prev", "string" }, { "self", "string" } } } },
    errcodes = errors{ FREQUENCY_LIMITED = "429: 20 a second per client (rule 20000730, before authentication), 50 000 a day (rule 20000731)" },
    notes = { "offset 0 with limit 0 or over 100: 400 PARAM_ERROR \"请在query里携带offset、limit参数\"" },
  },
  {
    method = "GET", path = "/v3/iotmanage/device-inspections/{device_sn}", token = AUTH, style = "pay", err = "PARAM_ERROR",
    source = "https://pay.weixin.qq.com/wiki/doc/wxfacepay/product/device-inspections.html",
    path_param = { "device_sn", "string", req = true, min = 5, max = 200, chars = "%w",
      src = "字符长度限制 [5, 200], 必须是字母数字 (doc); PARAM_ERROR for a bad one: chosen" },
    response = { { "device_sn", "string" }, { "wired_mac", "string" }, { "wireless_mac", "string" },
      { "bluetooth_mac", "string" }, { "app_version", "string" }, { "camera_sn", "string" }, { "imei", "string" },
      { "result", "string" }, { "errors", "array", items = { type = "string" } },
      { "warnings", "array", items = { type = "string" } }, { "inspect_time", "string" } },
    errcodes = errors{ RESOURCE_NOT_EXISTS = "404 for an SN not in the fleet (chosen)" },
  },
}

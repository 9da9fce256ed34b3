--- Contract: WMPF runtime backend (the reference below; the public pages
-- addDevice.html and pushAppMsg.html). Data only; see contract/init.lua.
local SEED = "WMPF back-end reference 硬件信息管理后台接口 (given to WMPF partners, no public page)"
-- "以硬件应用appid的身份" (硬件信息管理后台接口); addDevice: the mobile app (LauncherAPP) token.
local APP_TOKEN = { where = "query", param = "access_token", kinds = { app = true }, wrong = 48001,
  says = "mobile (host) app; a Mini Program token gets 48001" }
local PRODUCT_ID = { "product_id", "integer", req = true, least = 0 }
local OK = { { "errcode", "integer" }, { "errmsg", "string" } }
local NAME = { min = 1, max = 128, src = "1-128 bytes: chosen (the reference gives no limit)" }
local function name(field)
  local f = { field, "string", req = true }
  for k, v in pairs(NAME) do f[k] = v end
  return f
end
local COMMON = { [47001] = "data format error (also: unknown product_id, chosen)", [48001] = "api unauthorized (not the host app's token)",
  [50093] = "hostappid error (product of another app)" }

return {
  {
    method = "POST", path = "/wxa/business/runtime/createproduct", token = APP_TOKEN,
    source = SEED .. "; publicly a console step on wecooper.weixin.qq.com: "
      .. "https://developers.weixin.qq.com/doc/oplatform/Miniprogram_Frame/reg-device-info.html",
    body = { name("english_product_name"), name("chinese_product_name"), name("device_default_name") },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "product_id", "integer" } },
    errcodes = COMMON,
    notes = { "product ids fit in 32 bits: the device reads ActivateDevice.productId as int (WMPF ActivateDevice; "
      .. "the official demo wmpf_demo_external reads it with optInt)" },
  },
  {
    method = "POST", path = "/wxa/business/runtime/registerpubkey", token = APP_TOKEN,
    source = SEED,
    body = { PRODUCT_ID, { "pubkey", "string", req = true, min = 1,
      src = "a PEM P-256 public key (wmpf_demo_external mmiot_ecdsa_sign.sh); other keys get 47001: chosen" } },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "key_version", "integer" } },
    errcodes = COMMON,
  },
  {
    method = "POST", path = "/wxa/business/runtime/adddevice", token = APP_TOKEN,
    source = "https://developers.weixin.qq.com/doc/oplatform/Miniprogram_Frame/api/backend/addDevice.html; " .. SEED,
    body = { PRODUCT_ID,
      { "device_id_list", "array", req = true, min = 1, max = 10000, items = { type = "string", min = 1, max = 128 },
        src = "1-10000 ids of 1-128 bytes: chosen (no documented limit)" },
      { "model_name", "string", req = true, min = 1,
        src = "required on the official addDevice page (the reference is silent); the official tooling always sends it" } },
    response = OK,
    errcodes = COMMON,
  },
  {
    method = "POST", path = "/wxa/business/runtime/bindwxaapp", token = APP_TOKEN,
    source = SEED,
    body = { PRODUCT_ID, { "appid", "string", req = true, min = 1 } },
    response = OK,
    errcodes = { [40013] = "invalid appid (not a known Mini Program, chosen)", [48001] = COMMON[48001], [50093] = COMMON[50093] },
  },
  {
    method = "POST", path = "/wxa/business/runtime/pushappmsg",
    token = { where = "query", param = "access_token", kinds = { app = true, mp = true }, wrong = 48001,
      says = "mobile (host) app or Mini Program, as the device got its push_token" },
    source = "https://developers.weixin.qq.com/doc/oplatform/Miniprogram_Frame/api/backend/pushAppMsg.html; " .. SEED,
    err = 40101,
    body = { { "msg", "string", req = true, max = 5 * 1024, err_len = 45002 },
      { "push_token", "string", req = true, min = 1 } },
    response = OK,
    errcodes = { [40101] = "参数错误 (invalid parameter)", [45002] = "推送内容长度超过限制 (msg over 5 KB)",
      [48012] = "token无效 (push token unknown, expired or of the other sender)" },
  },
}

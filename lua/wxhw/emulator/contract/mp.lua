--- Contract: Mini Program hardware-device APIs
-- (developers.weixin.qq.com/miniprogram/dev/server/API/hardware-device/; sources
-- per entry). Data only; see contract/init.lua.
local DOC = "https://developers.weixin.qq.com/miniprogram/dev/server/API/hardware-device/"
local TOKEN = { where = "query", param = "access_token", kinds = { mp = true }, says = "Mini Program" }

-- sn: ≤128 bytes of [0-9A-Za-z_-] (getsnticket and sendHardwareDeviceMessage pages).
local SN = { "sn", "string", req = true, min = 1, max = 128, chars = "%w_%-", err_len = 9800001, err_chars = 9800002 }
local MODEL_ID = { "model_id", "string", req = true, min = 1 }
local GROUP_ID = { "group_id", "string", req = true, min = 1 }
-- Per-device sn rules are answered per device (errcode in device_list), so
-- the list only checks shapes here.
local DEVICE = { type = "object", fields = { { "model_id", "string", req = true }, { "sn", "string", req = true } } }
local DEVICE_LIST = { "device_list", "array", req = true, min = 1, max = 200, items = DEVICE,
  src = "≤200: the expanded group size (50 before expand); one call larger than a group: chosen" }
local OK = { { "errcode", "integer" }, { "errmsg", "string" } }
local PER_DEVICE = { { "errcode", "integer" }, { "errmsg", "string" }, { "device_list", "array",
  items = { type = "object", fields = { { "model_id", "string" }, { "sn", "string" }, { "errcode", "integer" } } } } }
local FORMAT = { [43002] = "require POST method", [44002] = "empty post data", [47001] = "data format error" }
local function with_format(t)
  for k, v in pairs(FORMAT) do t[k] = t[k] or v end
  return t
end

local entries = {
  {
    method = "POST", path = "/wxa/getsnticket", token = TOKEN,
    source = DOC .. "api_getsnticket",
    body = { SN, MODEL_ID },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "sn_ticket", "string" } },
    errcodes = with_format{ [-1] = "system error", [9800001] = "sn length exceeds 128 bytes",
      [9800002] = "sn contains illegal characters", [9800003] = "model_id check failed" },
    notes = { "the ticket is valid 5 minutes" },
  },
  {
    method = "POST", path = "/cgi-bin/message/device/subscribe/send", token = TOKEN,
    source = DOC .. "api_sendhardwaredevicemessage",
    body = {
      { "template_id", "string", req = true, min = 1 },
      SN,
      { "modelId", "string", req = true, min = 1, alias = "model_id",
        src = "the page spells modelId; WeChat staff confirmed model_id in community thread 0000a283208db00275cd3372550800: either" },
      { "to_openid_list", "array", req = true, min = 1, items = { type = "string", min = 1 } },
      { "page", "string", req = true, src = "required in the page's table (empty: no jump)" },
      { "miniprogram_state", "string", enum = { "developer", "trial", "formal" } },
      { "data", "object", req = true, values = { type = "object", fields = { { "value", "string", req = true } } } },
      { "lang", "string", req = true, enum = { "zh_CN", "en_US", "zh_HK", "zh_TW" }, src = "required in the page's table" },
    },
    response = OK,
    errcodes = with_format{ [-1] = "system error", [9800003] = "model_id check failed",
      [9800006] = "订阅model_id和sn关系检查失败 (community)" },
    notes = { "the page's own example omits modelId although its table requires it: the table wins (strictest)",
      "limit 10 million calls a day (not enforced)" },
  },
  {
    method = "POST", path = "/wxa/business/group/createid", token = TOKEN,
    source = DOC .. "api_createiotgroupid",
    body = { MODEL_ID, { "group_name", "string", req = true, min = 1, max = 32, err = 9800012 } },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "group_id", "string" } },
    errcodes = with_format{ [9800003] = "model_id check failed", [9800012] = "group_name length must be 1-32 bytes" },
  },
  {
    method = "POST", path = "/wxa/business/group/getinfo", token = TOKEN,
    source = "https://mp.weixin.qq.com/debug/wxadoc/dev/OpenApiDoc/hardware-device/getIotGroupInfo.html",
    body = { GROUP_ID },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "group_name", "string" }, { "model_id", "string" },
      { "model_type", "string" }, { "device_list", "array",
        items = { type = "object", fields = { { "model_id", "string" }, { "sn", "string" } } } } },
    errcodes = with_format{ [9800013] = "invalid group_id" },
  },
  {
    method = "POST", path = "/wxa/business/group/adddevice", token = TOKEN,
    source = DOC .. "api_addiotgroupdevice",
    body = { GROUP_ID, DEVICE_LIST, { "force_add", "boolean" } },
    response = PER_DEVICE,
    errcodes = with_format{ [9800013] = "invalid group_id", [9800014] = "device type does not match the group (per device)",
      [9800015] = "device already in a group (per device)", [9800016] = "group is full (per device)" },
    notes = { "errcodes 9800014-9800016: the cnblogs mirror 18641156 of the official page" },
  },
  {
    method = "POST", path = "/wxa/business/group/removedevice", token = TOKEN,
    source = "https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/hardware-device/removeIotGroupDevice.html",
    body = { GROUP_ID, DEVICE_LIST },
    response = PER_DEVICE,
    errcodes = with_format{ [9800013] = "invalid group_id", [9800017] = "device not in the group (per device)" },
  },
  {
    method = "POST", path = "/wxa/business/group/expand", token = TOKEN,
    source = "https://www.cnblogs.com/AtlasLapetos/p/18641144 (mirror of the official expandGroup page)",
    body = { GROUP_ID, { "max_device_count", "integer", req = true, enum = { 200 } },
      { "province_name", "string", req = true, min = 1 }, { "city_name", "string", req = true, min = 1 } },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "group_id", "string" } },
    errcodes = with_format{ [9800013] = "invalid group_id" },
  },
  {
    method = "POST", path = "/wxa/business/iot/voip/call", token = TOKEN,
    source = "undocumented: chosen from the Ezviz server demo (third party, doc id 4987); the URL is in the official cloudvoip_server.h",
    body = { MODEL_ID, SN, { "openid", "string", req = true, min = 1 },
      { "room_type", "string", req = true, enum = { "video", "voice" } },
      { "listener_name", "string" }, { "version_type", "integer", enum = { 0, 1, 2 } },
      { "query", "string" }, { "caller_camera_status", "integer", enum = { 0, 1 } },
      { "listener_camera_status", "integer", enum = { 0, 1 } }, { "payload", "string" } },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "roomid", "string" } },
    errcodes = with_format{ [9800003] = "model_id check failed", [9800010] = "user has not authorised VoIP (chosen)" },
  },
}
-- The sn rule, for the per-device results of adddevice / removedevice.
entries.SN = SN
return entries

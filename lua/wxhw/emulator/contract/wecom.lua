--- Contract: WeCom smart-hardware cloud access, /cgi-bin/openhw/
-- (developer.work.weixin.qq.com/document/path/91342). Data only; see
-- contract/init.lua. Request/response samples for every
-- path: fudiwei/DotNetCore.SKIT.FlurlHttpClient.Wechat@92020d95 ModelSamples
-- (copied to spec/fixtures/platform-samples/wecom-openhw/).
local DOC = "https://developer.work.weixin.qq.com/document/path/"
local MODEL = { where = "query", param = "model_access_token", kinds = { model = true }, says = "model_access_token" }
local DEVICE = { where = "query", param = "device_access_token", kinds = { device = true }, says = "device_access_token" }
-- WeCom SN: non-empty, ≤128, [0-9A-Za-z] (doc 95980); 40058 for a bad one: chosen.
local SN = { "device_sn", "string", req = true, min = 1, max = 128, chars = "%w", err_len = 40058, err_chars = 40058 }
local OK = { { "errcode", "integer" }, { "errmsg", "string" } }
local FAILED = { { "open_userid", "string" }, { "user_type", "integer" }, { "timestamp", "integer" } }
local FAIL_LIST = { { "errcode", "integer" }, { "errmsg", "string" }, { "fail_list", "array", items = { type = "object",
  fields = FAILED } } }
-- doc 95986's example also gives each failed record an errcode and errmsg
-- (the emulator leaves them out: chosen).
local TEMPERATURE_FAIL_LIST = { FAIL_LIST[1], FAIL_LIST[2], { "fail_list", "array", items = { type = "object",
  fields = { FAILED[1], FAILED[2], FAILED[3], { "errcode", "integer" }, { "errmsg", "string" } } } } }
-- Record values (user_type 0/2, pass_type, pass_method, status) are checked
-- per record by the route: a bad one lands in fail_list, the call succeeds.
local USER_TYPE = { "user_type", "integer", req = true, src = "0 member, 2 student (doc 95984); others: not found / fail_list" }
local function records(field, extra)
  local fields = { { "open_userid", "string", req = true, min = 1 }, USER_TYPE,
    { "timestamp", "integer", req = true, least = 0, most = 4294967295, src = "uint32 (docs 95985, 95997, 95986)" } }
  for _, f in ipairs(extra or {}) do fields[#fields + 1] = f end
  return { field, "array", req = true, min = 1, max = 100, err_len = 40058, items = { type = "object", fields = fields },
    src = "at most 100 records a call (doc); 40058 over it: chosen" }
end
local USERINFO = { "userinfo", "object", fields = { { "useritems", "array", items = { type = "object", fields = {
  { "open_userid", "string" }, { "user_name", "string" }, { "user_type", "integer" },
  { "pass_rule", "object", fields = { { "rule_list", "array", items = { type = "object",
    fields = { { "id", "integer" }, { "rule", "string" }, { "effect_time", "integer" } } } } } } } } } } }
-- The command results a device reports back (oper_id from the command push).
local RESULT = { { "oper_id", "string", req = true, min = 1, src = "an oper_id the platform never issued: 40058, chosen" },
  { "errcode", "integer", req = true, least = 0, most = 4294967295, src = "uint32 (doc)" }, { "errmsg", "string" } }
local VERSION = { max = 32, err_len = 40058, src = "at most 32 bytes (doc 95983); 40058 over it: chosen" }
local function version(name, max, req)
  local f = { name, "string", req = req }
  for k, v in pairs(VERSION) do f[k] = v end
  f.max = max or f.max
  return f
end
local function result(extra)
  local out = {}
  for _, f in ipairs(RESULT) do out[#out + 1] = f end
  for _, f in ipairs(extra or {}) do out[#out + 1] = f end
  return out
end
local TOKEN_ERRS = { [40001] = "invalid credential", [41001] = "token missing", [42001] = "token expired",
  [47001] = "data format error", [40058] = "invalid parameter (chosen for limits)" }

return {
  {
    method = "POST", path = "/cgi-bin/openhw/get_model_token",
    source = DOC .. "95992",
    body = { { "model_id", "string", req = true, min = 1 }, { "model_secret", "string", req = true, min = 1 },
      { "model_ticket", "string", req = true, min = 1, max = 512 } },
    response = { { "model_access_token", "string" }, { "expires_in", "integer" } },
    errcodes = { [40001] = "invalid model_secret (chosen)", [40058] = "invalid model_id (chosen)",
      [40085] = "invalid or expired model_ticket (chosen)" },
    notes = { "errcode only on failure (historical, doc 95992)", "model_ticket: pushed every 10 minutes, valid 30" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/get_device_secret", token = MODEL,
    source = DOC .. "95993",
    body = { { "auth_code", "string", req = true, min = 64, max = 512, err = 40029,
      src = "64-512 bytes, one use, 10 minutes (doc 95993, bind event 95987); 40029: chosen" } },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "device_secret", "string" },
      { "device_access_token", "string" }, { "expires_in", "integer" } },
    errcodes = { [40029] = "invalid auth_code (used, expired, unknown; chosen)" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/get_device_token", token = MODEL,
    source = DOC .. "96022",
    body = { { "device_sn", "string", req = true, min = 1 }, { "device_secret", "string", req = true, min = 1 } },
    response = { { "device_access_token", "string" }, { "expires_in", "integer" } },
    errcodes = { [40001] = "invalid device_secret (chosen)", [40058] = "unknown device_sn (chosen)" },
    notes = { "errcode only on failure (doc 96022)" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/model/register_sn", token = MODEL,
    source = DOC .. "95980",
    body = { SN },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "qr_code", "string" } },
    errcodes = { [40058] = "invalid device_sn (chosen)" },
    notes = { "SNs are unique case-insensitively; registering again is idempotent" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/model/unregister_sn", token = MODEL,
    source = DOC .. "95981",
    notes = { "only an SN that is not bound can be deleted (doc); 40058 for a bound one: chosen" },
    body = { SN },
    response = OK,
    errcodes = { [40058] = "invalid or unknown device_sn (chosen)" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/get_device_detail", token = MODEL,
    source = DOC .. "95982",
    body = { { "device_sn", "string", req = true, min = 1 } },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "device_detail", "object", fields = {
      { "model_name", "string" }, { "default_name", "string" }, { "qr_code", "string" }, { "bind_status", "integer" },
      { "auth_corp_info", "object", fields = { { "open_corpid", "string" }, { "corp_name", "string" } } },
      { "bind_corpinfo", "object", fields = { { "open_corpid", "string" }, { "corp_name", "string" } } },
      { "remark_name", "string" } } } },
    errcodes = { [40058] = "device_sn not registered (chosen)" },
    notes = { "the page's example says auth_corp_info, its table bind_corpinfo: both are sent" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/report_device_status", token = DEVICE,
    source = DOC .. "95983",
    body = { { "online_status", "integer", req = true, enum = { 1, 2 }, err_enum = 40058,
        src = "int32, 1 online / 2 offline (doc); 40058 for another value: chosen" },
      { "cur_version", "string", req = true, max = 32, err_len = 40058,
        src = "at most 32 bytes (doc); required: chosen (in the sample)" },
      { "upgradable_version", "string", max = 32, err_len = 40058, src = "at most 32 bytes (doc)" },
      { "upgradable_version_desc", "string", max = 256, err_len = 40058, src = "at most 256 bytes (doc)" } },
    notes = { "an upgradable_version without its description, or the reverse, is ignored (doc)",
      "report every half hour (doc) and at once on a fetch_device_status command (doc 97079)" },
    response = OK,
    errcodes = TOKEN_ERRS,
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/get_userinfo_by_page", token = DEVICE,
    source = DOC .. "95984",
    body = { { "cursor", "string" },
      { "limit", "integer", least = 1, most = 200, err = 40058, src = "uint32, max 200, default 100 (doc)" },
      { "only_perm_version", "boolean" } },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "next_cursor", "string" },
      { "perm_version", "integer" }, USERINFO },
    errcodes = { [40058] = "limit out of 1-200, or a cursor from another perm_version (chosen)" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/get_userinfo_by_ids", token = DEVICE,
    source = DOC .. "96037",
    body = { { "user_item", "array", req = true, min = 1, max = 100, err_len = 40058,
      items = { type = "object", fields = { { "open_userid", "string", req = true, min = 1 }, USER_TYPE } },
      src = "at most 100 (doc)" } },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, USERINFO },
    errcodes = { [40058] = "more than 100 users (chosen)" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/report_checkin_data", token = DEVICE,
    source = DOC .. "95985",
    body = { records("checkin_data") },
    response = FAIL_LIST,
    errcodes = { [40058] = "more than 100 records (chosen)" },
    notes = { "unknown users and more than 10 records per user per hour (chosen) land in fail_list" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/report_access_data", token = DEVICE,
    source = DOC .. "95997",
    body = { records("access_data", {
      { "pass_type", "integer", req = true, src = "1 in, 2 out, 3 unknown (doc); another value: fail_list" },
      { "pass_method", "integer", req = true, src = "1 face, 2 QR, 3 remote, 4 fingerprint (doc); another value: fail_list" } }) },
    response = FAIL_LIST,
    errcodes = { [40058] = "more than 100 records (chosen)" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/report_temperature_data", token = DEVICE,
    source = DOC .. "95986",
    body = { records("temperature_data", {
      { "temperature", "string", req = true, src = "a decimal string (\"36.7\" in the sample); empty: fail_list" },
      { "status", "integer", req = true, src = "0 normal, 1 fever, 2 too low (doc); another value: fail_list" } }) },
    response = TEMPERATURE_FAIL_LIST,
    errcodes = { [40058] = "more than 100 records (chosen)" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/report_firmware_upgrade_result", token = DEVICE,
    source = DOC .. "95999",
    body = result{ version("cur_version", nil, true) },
    response = OK,
    errcodes = TOKEN_ERRS,
    notes = { "oper_id comes from the update_firmware command push (doc 96011); an oper_id the platform never "
      .. "issued is refused with 40058 (chosen)", "errcode 0 with a version other than before = upgraded; 0 with "
      .. "the same version stays upgrading (doc)" },
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/report_bio_info_result", token = DEVICE,
    source = DOC .. "96000",
    notes = { "oper_id from an enter_page command (doc 96009); an unknown oper_id is refused with 40058 (chosen)",
      "without an oper_id (absent or empty: an entry made on the device itself) open_userid, user_type and "
      .. "bio_info_type take effect (doc); one of them missing then: 47001, a user outside the device's members: "
      .. "40058 (chosen)" },
    -- oper_id is optional here (doc 96000), unlike the other command results.
    body = { { "oper_id", "string", src = "present and non-empty: the other three fields are ignored (doc)" },
      RESULT[2], RESULT[3],
      { "open_userid", "string", src = "taken when oper_id is absent or empty (doc)" },
      { "user_type", "integer", enum = { 0, 2 }, err_enum = 40058, src = "uint32, 0 member, 2 student (doc)" },
      { "bio_info_type", "integer", enum = { 1, 2 }, err_enum = 40058, src = "uint32, 1 fingerprint, 2 face (doc)" } },
    response = OK,
    errcodes = TOKEN_ERRS,
  },
  {
    method = "POST", path = "/cgi-bin/openhw/device/report_remote_open_result", token = DEVICE,
    source = DOC .. "96048",
    body = result{ { "type", "string", req = true, enum = { "remote_open_door", "scan_qrcode_open" }, err_enum = 40058,
      src = "remote_open_door | scan_qrcode_open (doc)" } },
    notes = { "oper_id from a remote_open_door command (doc 96010), or for scan_qrcode_open from a user_scan "
      .. "command (doc 97390; 门禁开门的oper_id用户扫码事件推送, direct-access page 95050); an unknown oper_id, "
      .. "or one of the other command, is refused with 40058 (chosen)",
      "errcode 0 opened, 1 failed (doc; the SKIT sample sends 2: any uint32 is taken, non-zero = failed)" },
    response = OK,
    errcodes = TOKEN_ERRS,
  },
}
